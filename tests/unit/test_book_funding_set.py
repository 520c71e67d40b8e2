"""The book inserts into its funding set with SortedList.add's own steps, inlined: the set must
come out as the library would keep it, across sublist splits and with a positional index built
(when the book falls back to the library's add)."""

import random
from typing import Any

from matching.book import ListingBook, priority_key
from tests.unit.builders import T0, listing_terms

BIDS = 5_000  # well past the library's sublist size (2 × 1,000), so sublists split


def book_with_room() -> ListingBook:
    """A listing no bid below can cover: nothing is pushed out, every key stays in the set."""
    return ListingBook(listing_terms(amount=10**9, max_rate_bps=3_600), 1, T0)


def add_bids(book: ListingBook, rates: list[int], read_every: int | None = None) -> None:
    for i, rate in enumerate(rates):
        book.add(f"bid-{i}", f"lender-{i % 7}", 5_000, rate, 2 + i, T0 + i)
        if read_every and i % read_every == 0:
            assert book.funding[len(book.funding) // 2] is not None  # builds the index


def test_the_funding_set_is_the_sorted_keys_after_thousands_of_inserts_and_splits() -> None:
    rates = [random.Random(14).randint(1, 3_600) for _ in range(BIDS)]
    book = book_with_room()
    add_bids(book, rates)
    assert list(book.funding) == sorted(priority_key(r, i) for i, r in enumerate(rates))
    assert len(book.funding) == BIDS
    sublists: Any = book.funding
    assert len(sublists._lists) > 2, "the inserts split sublists"
    book.check_invariants()


def test_the_funding_set_stays_consistent_while_a_positional_index_is_built() -> None:
    rng = random.Random(15)
    rates = [rng.randint(1, 3_600) for _ in range(BIDS)]
    book = book_with_room()
    add_bids(book, rates, read_every=700)
    assert list(book.funding) == sorted(priority_key(r, i) for i, r in enumerate(rates))
    book.check_invariants()  # includes SortedList._check, which checks the index too
