"""Commands: everything the engine needs arrives inside them: time, ids and sequence numbers.

Times (`at`, `closes_at`) are integer microseconds since the Unix epoch, UTC. The shell must
hand commands over with non-decreasing `at`; replaying the journaled commands in `seq` order
rebuilds the same books.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from matching.policy import ListingPolicy
from matching.rules import Grade, Pricing


@dataclass(frozen=True, slots=True)
class ListingTerms:
    listing_id: str
    borrower_id: str
    amount: int
    term_months: int
    max_rate_bps: int
    grade: Grade
    closes_at: int
    min_funding_bps: int = 10_000
    close_when_funded: bool = False
    pricing: Pricing = "pay_as_bid"
    policy: ListingPolicy = ListingPolicy()
    #: The id the loan gets if the listing is funded; ledger entries of the funding name it.
    loan_id: str = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class OpenListing:
    terms: ListingTerms
    seq: int
    at: int


# Its own __init__, as the per-bid events have (matching/events.py): the shell builds one per
# bid, and a compiled frozen dataclass sets each field through object.__setattr__ (587 -> 71 ns
# from interpreted code, BENCHMARKS.md). Not frozen (so not hashable either): nothing but
# convention keeps it unchanged; the engine copies its fields out and keeps no reference to it.
@dataclass(slots=True, init=False)
class PlaceBid:
    listing_id: str
    bid_id: str
    lender_id: str
    amount: int
    min_rate_bps: int
    seq: int
    at: int

    def __init__(
        self, listing_id: str, bid_id: str, lender_id: str, amount: int, min_rate_bps: int,
        seq: int, at: int,
    ) -> None:
        self.listing_id = listing_id
        self.bid_id = bid_id
        self.lender_id = lender_id
        self.amount = amount
        self.min_rate_bps = min_rate_bps
        self.seq = seq
        self.at = at


@dataclass(frozen=True, slots=True)
class StoredBids:
    """One listing's stored bids, column by column in seq order: what recovery replays into its
    book in one go (`Engine.restore_bids`) instead of one `PlaceBid` at a time."""

    listing_id: str
    bid_ids: Sequence[str]
    lender_ids: Sequence[str]
    amounts: Sequence[int]
    rates_bps: Sequence[int]
    seqs: Sequence[int]
    placed_at: Sequence[int]
    #: The order behind each bid (None for a manual one); None when none is an auto bid.
    standing_order_ids: Sequence[str | None] | None = None


@dataclass(frozen=True, slots=True)
class AcceptEarly:
    listing_id: str
    seq: int
    at: int


@dataclass(frozen=True, slots=True)
class CancelListing:
    listing_id: str
    seq: int
    at: int


@dataclass(frozen=True, slots=True)
class Deposit:
    """Money arrived in custody for `account_id` (the platform's payment side reports it)."""

    account_id: str
    deposit_id: str
    amount: int
    at: int
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class Withdraw:
    account_id: str
    withdrawal_id: str
    amount: int
    at: int
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class CreateStandingOrder:
    """A lender's standing order: bid on every listing that opens from now on and matches."""

    order_id: str
    lender_id: str
    grades: tuple[Grade, ...]
    term_months_min: int
    term_months_max: int
    min_rate_bps: int
    amount_per_listing: int
    budget: int
    seq: int
    at: int
    active: bool = True


@dataclass(frozen=True, slots=True)
class UpdateStandingOrder:
    """Pause or resume an order, or change its budget; None leaves a field as it is."""

    order_id: str
    active: bool | None
    budget: int | None
    at: int


@dataclass(frozen=True, slots=True)
class DeleteStandingOrder:
    """The order bids no more; its live bids stay (bids are binding)."""

    order_id: str
    at: int


@dataclass(frozen=True, slots=True)
class AdvanceClock:
    """Resolve every listing whose `closes_at` is at or before `at`, in deadline order; with
    `max_listings`, only the first that many (the rest stay due for the next command)."""

    at: int
    max_listings: int | None = None


Command = (
    OpenListing | PlaceBid | AcceptEarly | CancelListing | AdvanceClock | Deposit | Withdraw
    | CreateStandingOrder | UpdateStandingOrder | DeleteStandingOrder
)
