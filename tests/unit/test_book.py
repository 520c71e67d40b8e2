"""The book's funding set by rate level (`matching/book.py`): what each level holds as bids
join it and leave it. The rules' outcomes are tested through the engine (test_bidding.py and the
differential test against the reference); these pin the structure they rest on."""

from matching.book import NO_BID, ListingBook
from tests.unit.books import stored
from tests.unit.builders import T0, listing_terms


def book(amount: int = 100_000) -> ListingBook:
    return ListingBook(listing_terms(amount=amount), opened_seq=1, opened_at=T0)


def place(target: ListingBook, amount: int, rate: int) -> tuple[int, list[int]]:
    seq = target.bid_count + 2
    return target.add(f"bid-{seq}", "lender", amount, rate, seq, T0 + seq)


def test_bids_at_one_rate_stack_on_their_level_in_arrival_order() -> None:
    b = book()
    for amount, rate in [(10_000, 900), (10_000, 700), (10_000, 900), (10_000, 800),
                         (10_000, 900)]:
        place(b, amount, rate)
    assert b.level_rates == [700, 800, 900]
    assert list(b.level_tails) == [1, 3, 4]
    assert list(b.earlier) == [NO_BID, NO_BID, 0, NO_BID, 2]
    assert list(b.levels()) == [[1], [3], [0, 2, 4]]
    assert b.in_funding_set() == [1, 3, 0, 2, 4]


def test_a_push_out_takes_the_latest_bid_of_the_dearest_level_and_drops_an_empty_level() -> None:
    b = book(amount=30_000)
    place(b, 10_000, 900)  # 0
    place(b, 10_000, 800)  # 1
    place(b, 10_000, 900)  # 2: covered
    assert place(b, 10_000, 700) == (10_000, [2])  # the later bid at 900 goes first
    assert (b.level_rates, list(b.level_tails)) == ([700, 800, 900], [3, 1, 0])
    assert place(b, 10_000, 600) == (10_000, [0])  # then the 900 level is empty
    assert (b.level_rates, list(b.level_tails)) == ([600, 700, 800], [4, 3, 1])
    assert list(b.outbid) == [2, 0]
    assert b.priority_order() == [4, 3, 1, 0, 2]
    assert (b.marginal_rate_bps, b.marginal_index, b.rate_below_bps) == (800, 1, 800)
    b.check_invariants()


def test_the_marginal_bid_is_the_latest_of_the_dearest_level_and_covers_in_part() -> None:
    b = book(amount=25_000)
    place(b, 10_000, 800)  # 0
    assert place(b, 10_000, 900) == (10_000, [])  # 1
    assert place(b, 10_000, 900) == (5_000, [])  # 2: the marginal bid itself, in part
    assert place(b, 10_000, 700) == (10_000, [2])  # 3: now 1 is marginal, in part
    assert (b.marginal_index, b.allocated(1), b.allocated(0), b.allocated(2)) == (1, 5_000,
                                                                                    10_000, 0)
    b.check_invariants()


def test_bids_restored_in_slices_join_the_levels_the_slices_before_them_left() -> None:
    """Two slices short of the amount (columns, linked to the levels already there), then one
    that covers it (bid by bid): the book that took the bids live, level for level."""
    bids = [(10_000, 900), (10_000, 800), (10_000, 900), (10_000, 800), (10_000, 900),
            (30_000, 700), (20_000, 800)]
    live = book(amount=60_000)
    for amount, rate in bids:
        place(live, amount, rate)
    restored = book(amount=60_000)
    for start, stop in [(0, 2), (2, 5), (5, 7)]:
        part = stored(live, start, stop)
        restored.restore(
            part.bid_ids, part.lender_ids, part.amounts, part.rates_bps, part.seqs, part.placed_at
        )
        restored.check_invariants()
    assert list(live.outbid) == [4, 2, 0], "the last slice emptied the 900 level, latest first"
    assert list(restored.earlier) == list(live.earlier) == [NO_BID, NO_BID, 0, 1, 2, NO_BID, 3]
    assert (restored.level_rates, list(restored.level_tails)) == ([700, 800], [5, 6])
    assert (live.level_rates, list(live.level_tails)) == ([700, 800], [5, 6])
    assert list(restored.outbid) == list(live.outbid)
    assert restored.in_funding_set() == live.in_funding_set() == [5, 1, 3, 6]
    assert (restored.total, restored.rate_below_bps) == (live.total, live.rate_below_bps)
