"""A listing book's whole state, to compare a rebuilt book with the live one field by field; and
a book's bids as storage gives them back, to rebuild from."""

from typing import Any

from matching import StoredBids
from matching.book import ListingBook


def book_state(book: ListingBook) -> tuple[Any, ...]:
    return (
        list(book.bid_ids), list(book.lenders), list(book.amounts), list(book.rates),
        list(book.seqs), list(book.placed_at), list(book.earlier), book.level_rates,
        list(book.level_tails), list(book.outbid),
        book.total, book.live_by_lender, book.auto_orders, book.auto_amount,
        book.rate_below_bps, book.min_rate_bps, book.opened_seq, book.opened_at, book.terms,
    )


def stored(book: ListingBook, start: int, stop: int) -> StoredBids:
    """The bids `start:stop` as storage gives them back (the lender strings are new objects)."""
    part = range(start, stop)
    orders = [book.standing_order_of(i) for i in part]
    return StoredBids(
        book.terms.listing_id, [book.bid_ids[i] for i in part],
        ["".join(book.lenders[i]) for i in part], [book.amounts[i] for i in part],
        [book.rates[i] for i in part], [book.seqs[i] for i in part],
        [book.placed_at[i] for i in part], orders if any(orders) else None,
    )
