"""The read model the API renders: summaries, bids in priority order, depth by rate level."""

from dataclasses import dataclass

from matching.book import BidStatus, ListingBook, ListingStatus
from matching.commands import ListingTerms
from matching.events import CloseReason


@dataclass(frozen=True, slots=True)
class ListingSummary:
    terms: ListingTerms
    status: ListingStatus
    opened_seq: int
    opened_at: int
    funded_amount: int
    bid_count: int
    marginal_rate_bps: int | None
    closed_at: int | None
    close_reason: CloseReason | None
    auto_bid_count: int = 0  # the standing orders' bids it got when it opened
    auto_bid_amount: int = 0


@dataclass(frozen=True, slots=True)
class BidView:
    listing_id: str
    bid_id: str
    lender_id: str
    seq: int
    amount: int
    rate_bps: int
    status: BidStatus
    allocated_amount: int
    placed_at: int
    standing_order_id: str | None = None  # set for an auto bid


@dataclass(frozen=True, slots=True)
class DepthLevel:
    rate_bps: int
    amount: int
    bid_count: int
    allocated_amount: int


def summary(book: ListingBook) -> ListingSummary:
    """O(1)."""
    return ListingSummary(
        book.terms, book.status, book.opened_seq, book.opened_at, book.covered, book.bid_count,
        book.marginal_rate_bps, book.closed_at, book.close_reason,
        len(book.auto_orders or ()), book.auto_amount,
    )


def bid_view(book: ListingBook, index: int) -> BidView:
    """O(1)."""
    return BidView(
        book.terms.listing_id, book.bid_ids[index], book.lenders[index], book.seqs[index],
        book.amounts[index], book.rates[index], book.bid_status(index), book.allocated(index),
        book.placed_at[index], book.standing_order_of(index),
    )


def depth(book: ListingBook) -> list[DepthLevel]:
    """Aggregate the book by rate level, cheapest first. O(n)."""
    # Summed in plain lists, one DepthLevel per level at the end (not one per bid).
    levels: list[list[int]] = []
    for index in book.priority_order():
        rate, amount, allocated = book.rates[index], book.amounts[index], book.allocated(index)
        if levels and levels[-1][0] == rate:
            top = levels[-1]
            top[1] += amount
            top[2] += 1
            top[3] += allocated
        else:
            levels.append([rate, amount, 1, allocated])
    return [DepthLevel(*level) for level in levels]
