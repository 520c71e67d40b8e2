"""Closing a book: a loan with fills, a failure or a cancellation, and the money each moves
(in the ledger, and in the budgets of the standing orders whose auto bids it touches); and the
money an outbid bid frees while the book is open."""

from matching.book import ListingBook
from matching.events import (
    BidOutbid,
    CloseReason,
    Event,
    Fill,
    ListingCancelled,
    ListingFailed,
    ListingFunded,
    StandingOrderChanged,
)
from matching.ledger import FEES, RESERVE_POOL, Ledger
from matching.policy import share_of
from matching.standing_orders import StandingOrders


def resolve(
    book: ListingBook, at: int, reason: CloseReason, ledger: Ledger, orders: StandingOrders
) -> list[Event]:
    """Close `book` as funded or failed by the auction rules (docs/rules.md), then move the
    money: the resolution event first, its ledger entries after. O(n) in the funding set."""
    terms = book.terms
    covered = book.covered
    book.close_reason = reason
    book.closed_at = at
    if not book.meets_min_funding:
        book.status = "failed"
        failed = ListingFailed(terms.listing_id, at, reason, covered, book.required)
        return [failed, *release_all(book, ledger, orders, at)]
    book.status = "funded"
    clearing: int | None = None
    if terms.pricing == "uniform":
        excluded = book.first_excluded_rate()
        clearing = terms.max_rate_bps if excluded is None else excluded
    fills = book.fills(clearing)
    policy = terms.policy
    funded = ListingFunded(
        terms.listing_id, terms.loan_id, at, reason, covered, headline_rate(fills),
        terms.term_months, tuple(fills), share_of(covered, policy.service_fee_bps),
        share_of(covered, policy.reserve_bps),
    )
    return [funded, *disburse(book, funded, ledger, orders)]


def cancel(book: ListingBook, at: int, ledger: Ledger, orders: StandingOrders) -> list[Event]:
    """The borrower or an admin withdrew the listing: every live bid is released. O(n)."""
    book.status, book.close_reason, book.closed_at = "cancelled", "cancelled", at
    cancelled = ListingCancelled(book.terms.listing_id, at, book.covered)
    return [cancelled, *release_all(book, ledger, orders, at)]


def release_all(
    book: ListingBook, ledger: Ledger, orders: StandingOrders, at: int
) -> list[Event]:
    """Unfreeze every live bid of a listing that did not fund; auto bids give budget back."""
    listing_id = book.terms.listing_id
    entries: list[Event] = []
    for i, lender, amount in book.live_lenders():
        entries.append(
            ledger.release(lender, amount, "listing", listing_id, listing_id, book.bid_ids[i], at)
        )
        order_id = book.standing_order_of(i)
        if order_id is not None:
            entries.append(StandingOrderChanged(orders.release(order_id, amount), at))
    return entries


def release_outbid(
    book: ListingBook, pushed_out: list[int], seq: int, at: int, ledger: Ledger,
    orders: StandingOrders, events: list[Event],
) -> None:
    """The bids the bid `seq` pushed out: each outbid and released (and an auto bid's budget
    given back to its order), appended to `events`. O(1) each."""
    listing_id = book.terms.listing_id
    for i in pushed_out:
        out_id, out_lender, out_amount = book.bid_ids[i], book.lenders[i], book.amounts[i]
        events.append(BidOutbid(
            listing_id, out_id, out_lender, out_amount, book.rates[i], book.seqs[i], at, seq
        ))
        events.append(ledger.release(out_lender, out_amount, "bid", out_id, listing_id, out_id, at))
        order_id = book.standing_order_of(i)
        if order_id is not None:
            events.append(StandingOrderChanged(orders.release(order_id, out_amount), at))


def disburse(
    book: ListingBook, funded: ListingFunded, ledger: Ledger, orders: StandingOrders
) -> list[Event]:
    """Settle each fill to the borrower and release the rest of its bid (only the marginal bid
    has one); then the borrower pays the service fee and the reserve contribution. An auto
    bid's fill is settled in its order's budget too, and its rest given back."""
    terms = book.terms
    borrower, loan_id, listing_id = terms.borrower_id, terms.loan_id, terms.listing_id
    at = funded.at
    entries: list[Event] = []
    for (i, lender, amount), fill in zip(book.live_lenders(), funded.fills, strict=True):
        entries.append(
            ledger.settle(lender, borrower, fill.amount, loan_id, listing_id, fill.bid_id, at)
        )
        if fill.amount < amount:
            entries.append(ledger.release(
                lender, amount - fill.amount, "loan", loan_id, listing_id, fill.bid_id, at
            ))
        order_id = book.standing_order_of(i)
        if order_id is not None:
            view = orders.settle(order_id, fill.amount)
            if fill.amount < amount:
                view = orders.release(order_id, amount - fill.amount)
            entries.append(StandingOrderChanged(view, at))
    if funded.service_fee:
        entries.append(ledger.collect(
            "fee", borrower, FEES, funded.service_fee, loan_id, listing_id, at
        ))
    if funded.reserve_contribution:
        entries.append(ledger.collect(
            "reserve_contribution", borrower, RESERVE_POOL, funded.reserve_contribution, loan_id,
            listing_id, at,
        ))
    return entries


def headline_rate(fills: list[Fill]) -> int:
    """Amount-weighted mean rate of the fills, rounded half up."""
    principal = sum(f.amount for f in fills)
    weighted = sum(f.amount * f.rate_bps for f in fills)
    return (2 * weighted + principal) // (2 * principal)
