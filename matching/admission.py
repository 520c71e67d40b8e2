"""Admission: what a listing or a bid must satisfy to enter the market. Checks only, no change.

The order of the checks decides which code a request with several faults gets; it is part of
the API's behaviour and the reference engine follows it.
"""

from functools import lru_cache

from matching import rejections as r
from matching.book import ListingBook
from matching.commands import ListingTerms, PlaceBid
from matching.rules import FULL_BPS, GRADES, PRICINGS, MarketRules

Rejection = r.Rejection


def check_terms(terms: ListingTerms, at: int, rules: MarketRules) -> Rejection | None:
    """A listing's own fields against the market's limits and its grade's floor. O(1)."""
    checks = (
        (not rules.min_listing_amount <= terms.amount <= rules.max_listing_amount,
         r.AMOUNT_OUT_OF_RANGE, "amount",
         f"amount is {rules.min_listing_amount} to {rules.max_listing_amount}"),
        (not 1 <= terms.term_months <= rules.max_term_months, r.TERM_OUT_OF_RANGE,
         "term_months", f"term is 1 to {rules.max_term_months} months"),
        (not 1 <= terms.max_rate_bps <= rules.legal_rate_cap_bps, r.RATE_OUT_OF_RANGE,
         "max_rate_bps", f"max rate is 1 to {rules.legal_rate_cap_bps} bps"),
        (not rules.min_window_us <= terms.closes_at - at <= rules.max_window_us,
         r.WINDOW_OUT_OF_RANGE, "closes_at",
         f"the window is {rules.min_window_us // 10**6} s to {rules.max_window_us // 10**6} s"),
        (not 1 <= terms.min_funding_bps <= FULL_BPS, r.MIN_FUNDING_OUT_OF_RANGE,
         "min_funding_bps", "min funding is 1 to 10000 bps"),
        (terms.grade not in GRADES, r.UNKNOWN_GRADE, "grade", f"grade is one of {GRADES}"),
        (terms.pricing not in PRICINGS, r.UNKNOWN_PRICING, "pricing",
         f"pricing is one of {PRICINGS}"),
        (terms.max_rate_bps < terms.policy.min_rate_bps, r.RATE_BELOW_GRADE_FLOOR,
         "max_rate_bps", f"grade {terms.grade} lends at {terms.policy.min_rate_bps} bps or more"),
    )
    for failed, code, field, detail in checks:
        if failed:
            return Rejection(code, detail, field)
    return None


def check_borrower_limit(
    terms: ListingTerms, exposure: int, rules: MarketRules
) -> Rejection | None:
    """Open listings plus funded principal, with this listing, within the borrower limit."""
    limit = rules.borrower_limit
    if limit and exposure + terms.amount > limit:
        return Rejection(
            r.BORROWER_LIMIT_EXCEEDED,
            f"open listings and loans of this borrower would reach {exposure + terms.amount}, "
            f"over the limit of {limit}",
            "amount",
        )
    return None


def admit_bid(book: ListingBook, cmd: PlaceBid, rules: MarketRules) -> Rejection | None:
    """`check_bid`'s answer, with its common case (every check passing) in a few comparisons
    first: the engine's hot path. The book keeps `min_rate_bps <= rate < rate_below_bps` as the
    rate checks and competitiveness together; a share-capped listing always takes the full path.
    """
    terms = book.terms
    if (
        book.min_rate_bps <= cmd.min_rate_bps < book.rate_below_bps
        and rules.min_bid_amount <= cmd.amount <= terms.amount
        and cmd.at < terms.closes_at and book.status == "open" and book.live_by_lender is None
    ):
        return None
    return check_bid(book, cmd, rules)


def check_bid(book: ListingBook, cmd: PlaceBid, rules: MarketRules) -> Rejection | None:
    """A bid against its listing's state and rules; funds are checked by the engine. O(1)."""
    terms = book.terms
    rate = cmd.min_rate_bps
    not_open = check_open(book, cmd.at)
    if not_open is not None:
        return not_open
    if cmd.amount < rules.min_bid_amount:
        return Rejection(
            r.BID_BELOW_MINIMUM, f"a bid is at least {rules.min_bid_amount}", "amount"
        )
    if cmd.amount > terms.amount:
        return Rejection(r.BID_ABOVE_LISTING_AMOUNT, f"a bid is at most {terms.amount}", "amount")
    if rate < 1:
        return Rejection(r.RATE_OUT_OF_RANGE, "a rate is at least 1 bp", "min_rate_bps")
    if rate > terms.max_rate_bps:
        return Rejection(
            r.RATE_ABOVE_MAX, f"the listing accepts at most {terms.max_rate_bps} bps",
            "min_rate_bps",
        )
    if rate < terms.policy.min_rate_bps:
        return Rejection(
            r.RATE_BELOW_GRADE_FLOOR,
            f"grade {terms.grade} lends at {terms.policy.min_rate_bps} bps or more", "min_rate_bps",
        )
    if book.total >= terms.amount and rate >= book.rate_below_bps:
        return not_competitive(book.rate_below_bps)
    if book.live_by_lender is not None:
        return check_lender_share(book, cmd.lender_id, cmd.amount)
    return None


@lru_cache(maxsize=4096)
def not_competitive(marginal_rate_bps: int) -> Rejection:
    """The refusal of a bid at or above a covered listing's marginal rate: the most common one
    once a listing is covered, so one (immutable) instance per marginal rate, built once."""
    return Rejection(
        r.BID_NOT_COMPETITIVE,
        f"the listing is fully covered; bid below {marginal_rate_bps} bps",
        "min_rate_bps", marginal_rate_bps,
    )


def share_room(book: ListingBook, lender_id: str) -> int:
    """What the lender may still bid on the listing under its share cap: the most its live bids
    may sum to (amount × bps, rounded down) less what they hold; the listing's amount if no cap."""
    terms = book.terms
    if book.live_by_lender is None:
        return terms.amount
    most = terms.amount * terms.policy.max_lender_share_bps // FULL_BPS
    return most - book.live_amount_of(lender_id)


def check_lender_share(book: ListingBook, lender_id: str, amount: int) -> Rejection | None:
    """One lender's live bids on a listing stay within its share cap (`share_room`)."""
    if amount <= share_room(book, lender_id):
        return None
    return Rejection(
        r.LENDER_SHARE_EXCEEDED,
        f"one lender may hold at most {book.terms.policy.max_lender_share_bps} bps of this "
        f"listing; this lender's live bids would reach {book.live_amount_of(lender_id) + amount}",
        "amount",
    )


def insufficient_funds(available: int, amount: int) -> Rejection:
    return Rejection(
        r.INSUFFICIENT_FUNDS, f"{amount} is more than the {available} available", "amount",
        available=available,
    )


def check_open(book: ListingBook, at: int) -> Rejection | None:
    """The listing takes bids and early closes: open, and its deadline not reached."""
    if book.status != "open" or at >= book.terms.closes_at:
        return Rejection(r.LISTING_NOT_OPEN, f"listing is {shown_status(book, at)}")
    return None


def shown_status(book: ListingBook, at: int) -> str:
    return "closed" if book.status == "open" and at >= book.terms.closes_at else book.status
