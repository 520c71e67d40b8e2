"""Builders for the engine's unit tests: a market in miniature.

`Market` plays the shell's part for the engine: it hands out `seq` numbers, keeps a clock that
never runs backwards, and checks the engine's invariants after every command. Unless told
otherwise it funds each lender just enough before a bid (a real `Deposit` command), so tests of
the auction rules need not think about money; the ledger's own tests turn that off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

from matching import (
    AcceptEarly,
    AdvanceClock,
    BidPlaced,
    BidView,
    CancelListing,
    Command,
    CreateStandingOrder,
    DeleteStandingOrder,
    Deposit,
    DepthLevel,
    Engine,
    Event,
    LedgerEntry,
    ListingCancelled,
    ListingFailed,
    ListingFunded,
    ListingPolicy,
    ListingSummary,
    ListingTerms,
    MarketRules,
    OpenListing,
    Outcome,
    PlaceBid,
    Rejection,
    StandingOrderView,
    UpdateStandingOrder,
    Withdraw,
)
from matching.rules import Grade, Pricing

SECOND: Final = 1_000_000
HOUR: Final = 3_600 * SECOND
DAY: Final = 24 * HOUR
T0: Final = 1_700_000_000 * SECOND  # 2023-11-14T22:13:20Z, when every market opens
CLOSES_AT: Final = T0 + HOUR
NO_POLICY: Final = ListingPolicy()  # no floor, no fee, no reserve, no share cap

E = TypeVar("E", bound=Event)


def listing_terms(
    listing_id: str = "L1",
    *,
    amount: int = 100_000,
    term_months: int = 12,
    max_rate_bps: int = 2_000,
    grade: Grade = "B",
    closes_at: int = CLOSES_AT,
    min_funding_bps: int = 10_000,
    close_when_funded: bool = False,
    pricing: Pricing = "pay_as_bid",
    policy: ListingPolicy = NO_POLICY,
    borrower_id: str | None = None,
) -> ListingTerms:
    return ListingTerms(
        listing_id, borrower_id or f"borrower-of-{listing_id}", amount, term_months,
        max_rate_bps, grade, closes_at, min_funding_bps, close_when_funded, pricing, policy,
        loan_id=f"loan-of-{listing_id}",
    )


class Market:
    """An engine, a seq counter and a clock. Every command is followed by the invariant check."""

    def __init__(self, rules: MarketRules | None = None, *, auto_fund: bool = True) -> None:
        self.engine = Engine(rules or MarketRules())
        self.seq = 0
        self.now = T0
        self.auto_fund = auto_fund
        self.deposits = 0

    def execute(self, command: Command) -> Outcome:
        outcome = self.engine.execute(command)
        self.engine.check_invariants()
        for event in outcome if isinstance(outcome, list) else []:
            if isinstance(event, BidPlaced):  # auto bids take the seqs after their listing's
                self.seq = max(self.seq, event.seq)
        return outcome

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def tick(self, at: int | None) -> int:
        """Move the clock to `at` (never backwards) and return the command's time."""
        if at is not None:
            assert at >= self.now, "commands reach the engine with non-decreasing times"
            self.now = at
        return self.now

    # --- commands -------------------------------------------------------------------------

    def open(self, terms: ListingTerms | None = None, *, at: int | None = None) -> Outcome:
        terms = terms or listing_terms()
        return self.execute(OpenListing(terms, self.next_seq(), self.tick(at)))

    def bid(
        self, amount: int, rate_bps: int, *, listing_id: str = "L1", at: int | None = None,
        lender: str | None = None,
    ) -> Outcome:
        seq = self.next_seq()
        at = self.tick(at)
        lender = lender or f"lender-{seq}"
        shortfall = amount - self.engine.ledger.available(lender)
        if self.auto_fund and shortfall > 0:
            events(self.deposit(lender, shortfall))
        return self.execute(PlaceBid(listing_id, f"bid-{seq}", lender, amount, rate_bps, seq, at))

    def deposit(self, account: str, amount: int, *, at: int | None = None) -> Outcome:
        self.deposits += 1
        return self.execute(
            Deposit(account, f"deposit-{self.deposits}", amount, self.tick(at), "test")
        )

    def withdraw(self, account: str, amount: int, *, at: int | None = None) -> Outcome:
        self.deposits += 1
        return self.execute(
            Withdraw(account, f"withdrawal-{self.deposits}", amount, self.tick(at), "test")
        )

    def order(
        self, lender: str, *, grades: tuple[Grade, ...] = ("B",),
        term_months: tuple[int, int] = (1, 60), min_rate_bps: int = 1_000,
        amount_per_listing: int = 10_000, budget: int = 1_000_000, active: bool = True,
        order_id: str | None = None, at: int | None = None,
    ) -> Outcome:
        """Create a standing order (id "O<seq>" unless given)."""
        seq = self.next_seq()
        return self.execute(CreateStandingOrder(
            order_id or f"O{seq}", lender, grades, term_months[0], term_months[1], min_rate_bps,
            amount_per_listing, budget, seq, self.tick(at), active,
        ))

    def update_order(
        self, order_id: str, *, active: bool | None = None, budget: int | None = None,
        at: int | None = None,
    ) -> Outcome:
        return self.execute(UpdateStandingOrder(order_id, active, budget, self.tick(at)))

    def delete_order(self, order_id: str, *, at: int | None = None) -> Outcome:
        return self.execute(DeleteStandingOrder(order_id, self.tick(at)))

    def standing_order(self, order_id: str) -> StandingOrderView:
        found = self.engine.standing_order(order_id)
        assert found is not None, f"no standing order {order_id}"
        return found

    def available(self, account: str) -> int:
        return self.engine.ledger.available(account)

    def reserved(self, account: str) -> int:
        balance = self.engine.balance(account)
        return 0 if balance is None else balance.reserved

    def place(
        self, amount: int, rate_bps: int, *, listing_id: str = "L1", at: int | None = None
    ) -> int:
        """Place a bid that must be accepted; return its seq."""
        placed = events(self.bid(amount, rate_bps, listing_id=listing_id, at=at))[0]
        assert isinstance(placed, BidPlaced)
        return placed.seq

    def accept(self, listing_id: str = "L1", *, at: int | None = None) -> Outcome:
        return self.execute(AcceptEarly(listing_id, self.next_seq(), self.tick(at)))

    def cancel(self, listing_id: str = "L1", *, at: int | None = None) -> Outcome:
        return self.execute(CancelListing(listing_id, self.next_seq(), self.tick(at)))

    def advance(self, at: int) -> Outcome:
        return self.execute(AdvanceClock(self.tick(at)))

    # --- reads ----------------------------------------------------------------------------

    def summary(self, listing_id: str = "L1") -> ListingSummary:
        found = self.engine.summary(listing_id)
        assert found is not None, f"{listing_id} is not in the engine"
        return found

    def view(self, seq: int, listing_id: str = "L1") -> BidView:
        found = self.engine.bid(listing_id, seq)
        assert found is not None, f"no bid with seq {seq} on {listing_id}"
        return found

    def bids(self, listing_id: str = "L1") -> list[BidView]:
        found = self.engine.bids(listing_id)
        assert found is not None, f"{listing_id} is not in the engine"
        return found

    def depth(self, listing_id: str = "L1") -> list[DepthLevel]:
        found = self.engine.depth(listing_id)
        assert found is not None, f"{listing_id} is not in the engine"
        return found

    def statuses(self, listing_id: str = "L1") -> dict[int, tuple[str, int]]:
        """seq → (status, allocated_amount) for every bid of the listing."""
        return {b.seq: (b.status, b.allocated_amount) for b in self.bids(listing_id)}


def market(*terms: ListingTerms, rules: MarketRules | None = None) -> Market:
    """A market with the given listings open (the default listing "L1" if none is given)."""
    m = Market(rules)
    for t in terms or (listing_terms(),):
        events(m.open(t))
    return m


def events(outcome: Outcome) -> list[Event]:
    """The events of an outcome that must not be a rejection."""
    assert not isinstance(outcome, Rejection), f"unexpected rejection: {outcome}"
    return outcome


def market_events(outcome: Outcome) -> list[Event]:
    """The auction's events of an outcome, without its ledger entries."""
    return [e for e in events(outcome) if not isinstance(e, LedgerEntry)]


def entries(outcome: Outcome) -> list[LedgerEntry]:
    """The ledger entries of an outcome, in order."""
    return [e for e in events(outcome) if isinstance(e, LedgerEntry)]


def rejected(outcome: Outcome, code: str) -> Rejection:
    """The rejection of an outcome that must be rejected with `code`."""
    assert isinstance(outcome, Rejection), f"expected {code}, got events {outcome}"
    assert outcome.code == code, f"expected {code}, got {outcome}"
    return outcome


def only(outcome: Outcome, kind: type[E]) -> E:
    """The single event of type `kind` in an outcome."""
    found = [e for e in events(outcome) if isinstance(e, kind)]
    assert len(found) == 1, f"expected one {kind.__name__} in {outcome}"
    return found[0]


# --- "L1" brought to each closed state, for tests of what a closed listing refuses ---------------


def funded_at_deadline() -> Market:
    m = market()
    m.place(100_000, 1_000)
    only(m.advance(CLOSES_AT), ListingFunded)
    return m


def funded_when_covered() -> Market:
    m = market(listing_terms(close_when_funded=True))
    only(m.bid(100_000, 1_000), ListingFunded)
    return m


def funded_by_acceptance() -> Market:
    m = market(listing_terms(min_funding_bps=5_000))
    m.place(60_000, 1_000)
    only(m.accept(), ListingFunded)
    return m


def failed_at_deadline() -> Market:
    m = market()
    m.place(60_000, 1_000)
    only(m.advance(CLOSES_AT), ListingFailed)
    return m


def cancelled() -> Market:
    m = market()
    m.place(60_000, 1_000)
    only(m.cancel(), ListingCancelled)
    return m


CLOSED_MARKETS: Final[tuple[tuple[str, Callable[[], Market]], ...]] = (
    ("funded at deadline", funded_at_deadline),
    ("funded when covered", funded_when_covered),
    ("funded by acceptance", funded_by_acceptance),
    ("failed", failed_at_deadline),
    ("cancelled", cancelled),
)
