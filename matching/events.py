"""Events: what the engine decided. The shell persists and announces them."""

from dataclasses import dataclass
from typing import Literal

from matching.commands import ListingTerms
from matching.ledger import LedgerEntry
from matching.standing_orders import StandingOrderView

CloseReason = Literal["deadline", "fully_funded", "accepted", "cancelled"]


@dataclass(frozen=True, slots=True)
class ListingOpened:
    """The listing opened; the standing orders' bids it got at once follow it (their count
    and total are here)."""

    terms: ListingTerms
    seq: int
    at: int
    auto_bid_count: int = 0
    auto_bid_amount: int = 0


# The per-bid events (and the ledger's entries) write their own __init__: compiled (setup.py),
# the core then builds them with a direct call, where a dataclass's generated __init__ goes
# through an argument tuple and dict (`Engine.place_bid` 1,461 -> 792-855 ns, BENCHMARKS.md).
# Not frozen: a frozen dataclass sets each field through object.__setattr__.
@dataclass(slots=True, init=False)
class BidPlaced:
    listing_id: str
    bid_id: str
    lender_id: str
    amount: int
    rate_bps: int
    seq: int
    at: int
    allocated_amount: int
    standing_order_id: str | None  # set for an auto bid

    def __init__(
        self, listing_id: str, bid_id: str, lender_id: str, amount: int, rate_bps: int, seq: int,
        at: int, allocated_amount: int, standing_order_id: str | None = None,
    ) -> None:
        self.listing_id = listing_id
        self.bid_id = bid_id
        self.lender_id = lender_id
        self.amount = amount
        self.rate_bps = rate_bps
        self.seq = seq
        self.at = at
        self.allocated_amount = allocated_amount
        self.standing_order_id = standing_order_id


@dataclass(slots=True, init=False)
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

    def __init__(
        self, listing_id: str, bid_id: str, lender_id: str, amount: int, rate_bps: int, seq: int,
        at: int, by_seq: int,
    ) -> None:
        self.listing_id = listing_id
        self.bid_id = bid_id
        self.lender_id = lender_id
        self.amount = amount
        self.rate_bps = rate_bps
        self.seq = seq
        self.at = at
        self.by_seq = by_seq


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


@dataclass(frozen=True, slots=True)
class StandingOrderChanged:
    """A standing order's state after a change: created, updated, deleted, or its money moved
    by an auto bid (placed, released, settled). Within one command the last one counts."""

    order: StandingOrderView
    at: int


Event = (
    ListingOpened | BidPlaced | BidOutbid | ListingFunded | ListingFailed | ListingCancelled
    | LedgerEntry | StandingOrderChanged
)
Resolution = ListingFunded | ListingFailed | ListingCancelled
