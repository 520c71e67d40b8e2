"""Turning a closed book into its resolution: a loan with fills, or a failure."""

from matching.book import ListingBook
from matching.events import CloseReason, Fill, ListingFailed, ListingFunded
from matching.rules import required_coverage


def resolve(book: ListingBook, at: int, reason: CloseReason) -> ListingFunded | ListingFailed:
    """Close `book` as funded or failed by SPEC §3. O(n) in the funding set's size."""
    terms = book.terms
    covered = book.covered
    required = required_coverage(terms.amount, terms.min_funding_bps)
    book.close_reason = reason
    book.closed_at = at
    if covered < required or covered == 0:
        book.status = "failed"
        return ListingFailed(terms.listing_id, at, reason, covered, required)
    book.status = "funded"
    fills = book.fills()
    if terms.pricing == "uniform":
        excluded = book.first_excluded_rate()
        clearing = terms.max_rate_bps if excluded is None else excluded
        fills = [Fill(f.bid_id, f.lender_id, f.seq, f.amount, clearing) for f in fills]
    return ListingFunded(
        terms.listing_id, at, reason, covered, headline_rate(fills), terms.term_months, tuple(fills)
    )


def headline_rate(fills: list[Fill]) -> int:
    """Amount-weighted mean rate of the fills, rounded half up."""
    principal = sum(f.amount for f in fills)
    weighted = sum(f.amount * f.rate_bps for f in fills)
    return (2 * weighted + principal) // (2 * principal)
