"""Rejections are results, not exceptions: each carries the API's stable `code`."""

from dataclasses import dataclass
from typing import Final

LISTING_NOT_FOUND: Final = "listing_not_found"
LISTING_NOT_OPEN: Final = "listing_not_open"
LISTING_EXISTS: Final = "listing_exists"
BID_NOT_COMPETITIVE: Final = "bid_not_competitive"
RATE_ABOVE_MAX: Final = "rate_above_max"
RATE_OUT_OF_RANGE: Final = "rate_out_of_range"
BID_BELOW_MINIMUM: Final = "bid_below_minimum"
BID_ABOVE_LISTING_AMOUNT: Final = "bid_above_listing_amount"
AMOUNT_OUT_OF_RANGE: Final = "amount_out_of_range"
TERM_OUT_OF_RANGE: Final = "term_out_of_range"
WINDOW_OUT_OF_RANGE: Final = "window_out_of_range"
MIN_FUNDING_OUT_OF_RANGE: Final = "min_funding_out_of_range"
UNKNOWN_GRADE: Final = "unknown_grade"
UNKNOWN_PRICING: Final = "unknown_pricing"
BELOW_MIN_FUNDING: Final = "below_min_funding"
RATE_BELOW_GRADE_FLOOR: Final = "rate_below_grade_floor"
INSUFFICIENT_FUNDS: Final = "insufficient_funds"
LENDER_SHARE_EXCEEDED: Final = "lender_share_exceeded"
BORROWER_LIMIT_EXCEEDED: Final = "borrower_limit_exceeded"
ACCOUNT_NOT_FOUND: Final = "account_not_found"
ACCOUNT_NOT_ALLOWED: Final = "account_not_allowed"
STANDING_ORDER_NOT_FOUND: Final = "standing_order_not_found"
STANDING_ORDER_EXISTS: Final = "standing_order_exists"
TERM_RANGE_INVERTED: Final = "term_range_inverted"
BUDGET_BELOW_AMOUNT: Final = "budget_below_amount_per_listing"

#: Codes that mean "the request is fine but the state forbids it" (HTTP 409).
CONFLICT_CODES: Final = frozenset({
    LISTING_NOT_OPEN, BID_NOT_COMPETITIVE, BELOW_MIN_FUNDING, LISTING_EXISTS, INSUFFICIENT_FUNDS,
    LENDER_SHARE_EXCEEDED, BORROWER_LIMIT_EXCEEDED, STANDING_ORDER_EXISTS,
})
#: Codes that mean "no such thing" (HTTP 404).
NOT_FOUND_CODES: Final = frozenset({
    LISTING_NOT_FOUND, ACCOUNT_NOT_FOUND, STANDING_ORDER_NOT_FOUND,
})


@dataclass(frozen=True, slots=True)
class Rejection:
    """A command the engine refused; nothing changed. `field` names the offending input."""

    code: str
    detail: str
    field: str | None = None
    marginal_rate_bps: int | None = None
    available: int | None = None  # with insufficient_funds: what the account has available
