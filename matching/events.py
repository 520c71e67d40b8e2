"""Events: what the engine decided. The shell persists and announces them."""

from dataclasses import dataclass
from typing import Literal

from matching.commands import ListingTerms
from matching.ledger import LedgerEntry

CloseReason = Literal["deadline", "fully_funded", "accepted", "cancelled"]


@dataclass(frozen=True, slots=True)
class ListingOpened:
    terms: ListingTerms
    seq: int
    at: int


# The two per-bid events are not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, which costs about half a microsecond per bid on the hot path.
@dataclass(slots=True)
class BidPlaced:
    listing_id: str
    bid_id: str
    lender_id: str
    amount: int
    rate_bps: int
    seq: int
    at: int
    allocated_amount: int


@dataclass(slots=True)
class BidOutbid:
    """The bid's allocation dropped to 0. Final: bids are binding and never come back."""

    listing_id: str
    bid_id: str
    lender_id: str
    amount: int
    rate_bps: int
    seq: int
    at: int
    by_seq: int


@dataclass(frozen=True, slots=True)
class Fill:
    bid_id: str
    lender_id: str
    seq: int
    amount: int
    rate_bps: int


@dataclass(frozen=True, slots=True)
class ListingFunded:
    """A loan of `principal` booked with one fill per bid in the funding set. The borrower pays
    `service_fee` and `reserve_contribution` out of the principal at disbursement."""

    listing_id: str
    loan_id: str
    at: int
    reason: CloseReason
    principal: int
    rate_bps: int
    term_months: int
    fills: tuple[Fill, ...]
    service_fee: int
    reserve_contribution: int


@dataclass(frozen=True, slots=True)
class ListingFailed:
    listing_id: str
    at: int
    reason: CloseReason
    covered: int
    required: int


@dataclass(frozen=True, slots=True)
class ListingCancelled:
    listing_id: str
    at: int
    covered: int


Event = (
    ListingOpened | BidPlaced | BidOutbid | ListingFunded | ListingFailed | ListingCancelled
    | LedgerEntry
)
Resolution = ListingFunded | ListingFailed | ListingCancelled
