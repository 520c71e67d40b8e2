"""A naive reference engine, written from the rules in docs/ alone, for differential tests.

Nothing clever on purpose (exchange-core's `OrderBookNaiveImpl`): each listing keeps a plain list
of its accepted bids, and every question (funding set, allocations, who is outbid, clearing rate,
coverage) is answered from scratch by sorting that list and walking it from the start. O(n log n)
per command and per read; it exists to be obviously right, not fast.

Money is naive too: no balances are kept. An account's money is the sum of its final flows
(deposits, withdrawals, fills paid, principal received less fee and reserve, platform income),
and its reserved part is the sum of its bids in open listings' funding sets, both recomputed
from scratch on every question.

Standing orders (`reference_orders.py`) are naive the same way: when a listing opens, every
order is tested, the ones that may bid are sorted by ticket, and each bids through the same
`place_bid` as anyone, for the amount the rules give, until the auto-bid cap is used up.

Only the ORDER of the admission checks is taken from `matching.admission`, since that is a
choice the rules leave open; the rest follows the rules' wording.
"""

import math
from dataclasses import dataclass, field
from fractions import Fraction

from matching import rejections as r
from matching.book import BidStatus, ListingStatus
from matching.commands import (
    AcceptEarly,
    AdvanceClock,
    CancelListing,
    Command,
    CreateStandingOrder,
    DeleteStandingOrder,
    Deposit,
    OpenListing,
    PlaceBid,
    UpdateStandingOrder,
    Withdraw,
)
from matching.events import (
    BidOutbid,
    BidPlaced,
    CloseReason,
    Event,
    Fill,
    ListingCancelled,
    ListingFailed,
    ListingFunded,
    ListingOpened,
    Resolution,
    StandingOrderChanged,
)
from matching.ledger import FEES, RESERVE_POOL, Balance
from matching.rejections import Rejection
from matching.rules import MarketRules
from matching.views import BidView, DepthLevel, ListingSummary
from tests.unit.reference_orders import ReferenceOrders, RefOrder, auto_bid_id

Outcome = list[Event] | Rejection

GRADES = ("AA", "A", "B", "C", "D", "E", "HR")
PRICINGS = ("pay_as_bid", "uniform")


@dataclass(eq=False)
class _Bid:
    """Compared and hashed by identity: two bids are the same bid only if they are one object."""

    bid_id: str
    lender_id: str
    amount: int
    rate_bps: int
    seq: int
    placed_at: int
    order: RefOrder | None = None  # the standing order that placed it


@dataclass(eq=False)
class _Listing:
    open_command: OpenListing
    status: ListingStatus = "open"
    closed_at: int | None = None
    close_reason: CloseReason | None = None
    bids: list[_Bid] = field(default_factory=list)  # arrival order

    @property
    def amount(self) -> int:
        return self.open_command.terms.amount

    def ranked(self) -> list[_Bid]:
        """Every bid, best first: lower rate, then earlier seq."""
        return sorted(self.bids, key=lambda bid: (bid.rate_bps, bid.seq))

    def funding_set(self) -> list[_Bid]:
        """The shortest prefix of the ranked book whose amounts reach the listing amount."""
        prefix: list[_Bid] = []
        for bid in self.ranked():
            if sum(b.amount for b in prefix) >= self.amount:
                break
            prefix.append(bid)
        return prefix

    def allocations(self) -> dict[_Bid, int]:
        """How much of each bid is in the funding set: fill the amount in priority order."""
        still_needed = self.amount
        allocated: dict[_Bid, int] = {}
        for bid in self.ranked():
            allocated[bid] = min(bid.amount, still_needed)
            still_needed -= allocated[bid]
        return allocated

    def covered(self) -> int:
        return min(sum(b.amount for b in self.funding_set()), self.amount)

    def fully_covered(self) -> bool:
        return sum(b.amount for b in self.funding_set()) >= self.amount

    def marginal_rate_bps(self) -> int | None:
        funding = self.funding_set()
        return funding[-1].rate_bps if funding else None

    def required(self) -> int:
        """ceil(amount × min_funding_bps / 10000), by Fraction to stay independent."""
        exact = Fraction(self.amount * self.open_command.terms.min_funding_bps, 10_000)
        return exact.numerator // exact.denominator + (exact.denominator != 1)

    def clearing_rate_bps(self) -> int:
        """Rate of the first unit of money left out of the funding set, else the listing cap."""
        allocated = self.allocations()
        for bid in self.ranked():
            if allocated[bid] < bid.amount:
                return bid.rate_bps
        return self.open_command.terms.max_rate_bps

    def live_bids(self) -> list[_Bid]:
        """Bids whose money is frozen: the funding set of a listing still open."""
        return self.funding_set() if self.status == "open" else []

    def bid_status(self, allocated_amount: int) -> BidStatus:
        if allocated_amount == 0:
            return "outbid"
        if self.status == "open":
            return "active"
        return "won" if self.status == "funded" else "lost"

    def is_open_at(self, at: int) -> bool:
        return self.status == "open" and at < self.open_command.terms.closes_at


class ReferenceEngine:
    """Same commands and reads as `matching.Engine`; state is a dict of plain listings."""

    def __init__(self, rules: MarketRules, *, check_funds: bool = True) -> None:
        self.rules = rules
        self.check_funds = check_funds  # off for replays of stored bids without their deposits
        self._listings: dict[str, _Listing] = {}
        # Every final movement of money, (account, signed amount): never released, never undone.
        self._flows: list[tuple[str, int]] = []
        self._funded_principal: list[tuple[str, int]] = []  # (borrower, principal)
        self.orders = ReferenceOrders(rules, self._live_auto_bids)

    def execute(self, command: Command) -> Outcome:
        if isinstance(command, OpenListing):
            return self.open_listing(command)
        if isinstance(command, PlaceBid):
            return self.place_bid(command)
        if isinstance(command, AcceptEarly):
            return self.accept_early(command)
        if isinstance(command, CancelListing):
            return self.cancel_listing(command)
        if isinstance(command, Deposit):
            return self.deposit(command)
        if isinstance(command, Withdraw):
            return self.withdraw(command)
        if isinstance(command, CreateStandingOrder | UpdateStandingOrder | DeleteStandingOrder):
            return self.change_order(command)
        return self.advance_clock(command)

    # --- commands ---------------------------------------------------------------------------

    def open_listing(self, cmd: OpenListing) -> Outcome:
        t, rules = cmd.terms, self.rules
        if t.listing_id in self._listings:
            return Rejection(r.LISTING_EXISTS, "", "listing_id")
        if t.amount < rules.min_listing_amount or t.amount > rules.max_listing_amount:
            return Rejection(r.AMOUNT_OUT_OF_RANGE, "", "amount")
        if t.term_months < 1 or t.term_months > rules.max_term_months:
            return Rejection(r.TERM_OUT_OF_RANGE, "", "term_months")
        if t.max_rate_bps < 1 or t.max_rate_bps > rules.legal_rate_cap_bps:
            return Rejection(r.RATE_OUT_OF_RANGE, "", "max_rate_bps")
        window = t.closes_at - cmd.at
        if window < rules.min_window_us or window > rules.max_window_us:
            return Rejection(r.WINDOW_OUT_OF_RANGE, "", "closes_at")
        if t.min_funding_bps < 1 or t.min_funding_bps > 10_000:
            return Rejection(r.MIN_FUNDING_OUT_OF_RANGE, "", "min_funding_bps")
        if t.grade not in GRADES:
            return Rejection(r.UNKNOWN_GRADE, "", "grade")
        if t.pricing not in PRICINGS:
            return Rejection(r.UNKNOWN_PRICING, "", "pricing")
        if t.max_rate_bps < t.policy.min_rate_bps:
            return Rejection(r.RATE_BELOW_GRADE_FLOOR, "", "max_rate_bps")
        if self.rules.borrower_limit and (
            self.exposure(t.borrower_id) + t.amount > self.rules.borrower_limit
        ):
            return Rejection(r.BORROWER_LIMIT_EXCEEDED, "", "amount")
        listing = self._listings[t.listing_id] = _Listing(cmd)
        bids = self._auto_bids(listing, cmd)
        auto = [b for b in listing.bids if b.order is not None]
        opened = ListingOpened(t, cmd.seq, cmd.at, len(auto), sum(b.amount for b in auto))
        return [opened, *bids]

    def _auto_bids(self, listing: _Listing, cmd: OpenListing) -> list[Event]:
        """The orders that may bid, by ticket; each bids what the rules allow, if that is at
        least the minimum bid, until the auto bids reach their share of the listing."""
        terms, min_bid = cmd.terms, self.rules.min_bid_amount
        cap = math.floor(Fraction(terms.amount * terms.policy.autobid_max_share_bps, 10_000))
        events: list[Event] = []
        bidders: list[RefOrder] = []
        seq = cmd.seq
        for order in self.orders.queue(terms):
            room = cap - sum(b.amount for b in listing.bids if b.order is not None)
            if room < min_bid or listing.status != "open":
                break
            amount = min(
                order.cmd.amount_per_listing, self.orders.budget_left(order),
                self.available(order.cmd.lender_id), self._share_room(listing, order), room,
            )
            if amount < min_bid:
                continue
            rate = max(order.cmd.min_rate_bps, terms.policy.min_rate_bps)
            bid_id = auto_bid_id(terms.listing_id, order.order_id)
            bid = PlaceBid(
                terms.listing_id, bid_id, order.cmd.lender_id, amount, rate, seq + 1, cmd.at
            )
            placed = self._place(bid, order)
            if isinstance(placed, Rejection):
                continue
            seq += 1
            bidders.append(order)
            events += placed
        self.orders.to_the_back(bidders)
        return events

    def _share_room(self, listing: _Listing, order: RefOrder) -> int:
        share_bps = listing.open_command.terms.policy.max_lender_share_bps
        if share_bps >= 10_000:
            return listing.amount
        mine = sum(b.amount for b in listing.live_bids() if b.lender_id == order.cmd.lender_id)
        return math.floor(Fraction(listing.amount * share_bps, 10_000)) - mine

    def change_order(
        self, cmd: CreateStandingOrder | UpdateStandingOrder | DeleteStandingOrder
    ) -> Outcome:
        if isinstance(cmd, CreateStandingOrder):
            changed = self.orders.create(cmd)
        elif isinstance(cmd, UpdateStandingOrder):
            changed = self.orders.update(cmd)
        else:
            changed = self.orders.delete(cmd)
        if isinstance(changed, Rejection):
            return changed
        return [StandingOrderChanged(changed, cmd.at)]

    def place_bid(self, cmd: PlaceBid) -> Outcome:
        return self._place(cmd, None)

    def _place(self, cmd: PlaceBid, order: RefOrder | None) -> Outcome:
        listing = self._listings.get(cmd.listing_id)
        if listing is None:
            return Rejection(r.LISTING_NOT_FOUND, "")
        if not listing.is_open_at(cmd.at):
            return Rejection(r.LISTING_NOT_OPEN, "")
        if cmd.amount < self.rules.min_bid_amount:
            return Rejection(r.BID_BELOW_MINIMUM, "", "amount")
        if cmd.amount > listing.amount:
            return Rejection(r.BID_ABOVE_LISTING_AMOUNT, "", "amount")
        if cmd.min_rate_bps < 1:
            return Rejection(r.RATE_OUT_OF_RANGE, "", "min_rate_bps")
        if cmd.min_rate_bps > listing.open_command.terms.max_rate_bps:
            return Rejection(r.RATE_ABOVE_MAX, "", "min_rate_bps")
        if cmd.min_rate_bps < listing.open_command.terms.policy.min_rate_bps:
            return Rejection(r.RATE_BELOW_GRADE_FLOOR, "", "min_rate_bps")
        marginal = listing.marginal_rate_bps()
        if listing.fully_covered() and marginal is not None and cmd.min_rate_bps >= marginal:
            return Rejection(r.BID_NOT_COMPETITIVE, "", "min_rate_bps", marginal)
        share_bps = listing.open_command.terms.policy.max_lender_share_bps
        mine = sum(b.amount for b in listing.live_bids() if b.lender_id == cmd.lender_id)
        capped = share_bps < 10_000  # 10000 bps is "no cap", not "at most the amount"
        if capped and Fraction(mine + cmd.amount, listing.amount) > Fraction(share_bps, 10_000):
            return Rejection(r.LENDER_SHARE_EXCEEDED, "", "amount")
        available = self.available(cmd.lender_id)
        if self.check_funds and cmd.amount > available:
            return Rejection(r.INSUFFICIENT_FUNDS, "", "amount", available=available)

        in_before = listing.funding_set()
        out_before = [b for b in listing.bids if b not in in_before]
        new = _Bid(
            cmd.bid_id, cmd.lender_id, cmd.amount, cmd.min_rate_bps, cmd.seq, cmd.at, order
        )
        listing.bids.append(new)
        in_after = listing.funding_set()
        assert not any(b in in_after for b in out_before), "an outbid bid came back"
        events: list[Event] = [
            BidPlaced(
                cmd.listing_id, cmd.bid_id, cmd.lender_id, cmd.amount, cmd.min_rate_bps,
                cmd.seq, cmd.at, listing.allocations()[new],
                None if order is None else order.order_id,
            )
        ]
        dropped = [b for b in reversed(listing.ranked()) if b in in_before and b not in in_after]
        events += [
            BidOutbid(
                cmd.listing_id, b.bid_id, b.lender_id, b.amount, b.rate_bps, b.seq, cmd.at,
                cmd.seq,
            )
            for b in dropped
        ]
        if listing.open_command.terms.close_when_funded and listing.fully_covered():
            events.append(self._resolve(listing, cmd.at, "fully_funded"))
        return events

    def accept_early(self, cmd: AcceptEarly) -> Outcome:
        listing = self._listings.get(cmd.listing_id)
        if listing is None:
            return Rejection(r.LISTING_NOT_FOUND, "")
        if not listing.is_open_at(cmd.at):
            return Rejection(r.LISTING_NOT_OPEN, "")
        if listing.covered() < listing.required() or listing.covered() == 0:
            return Rejection(r.BELOW_MIN_FUNDING, "")
        return [self._resolve(listing, cmd.at, "accepted")]

    def cancel_listing(self, cmd: CancelListing) -> Outcome:
        listing = self._listings.get(cmd.listing_id)
        if listing is None:
            return Rejection(r.LISTING_NOT_FOUND, "")
        if not listing.is_open_at(cmd.at):
            return Rejection(r.LISTING_NOT_OPEN, "")
        return [self._resolve(listing, cmd.at, "cancelled")]

    def advance_clock(self, cmd: AdvanceClock) -> Outcome:
        due = sorted(
            (
                listing for listing in self._listings.values()
                if listing.status == "open" and listing.open_command.terms.closes_at <= cmd.at
            ),
            key=lambda listing: (listing.open_command.terms.closes_at, listing.open_command.seq),
        )
        return [self._resolve(d, d.open_command.terms.closes_at, "deadline") for d in due]

    def deposit(self, cmd: Deposit) -> Outcome:
        if cmd.account_id == "external":
            return Rejection(r.ACCOUNT_NOT_ALLOWED, "")
        if cmd.amount < 1:
            return Rejection(r.AMOUNT_OUT_OF_RANGE, "", "amount")
        self._flows.append((cmd.account_id, cmd.amount))
        return []

    def withdraw(self, cmd: Withdraw) -> Outcome:
        if self.balance(cmd.account_id) is None:
            return Rejection(r.ACCOUNT_NOT_FOUND, "")
        if cmd.amount < 1:
            return Rejection(r.AMOUNT_OUT_OF_RANGE, "", "amount")
        available = self.available(cmd.account_id)
        if cmd.amount > available:
            return Rejection(r.INSUFFICIENT_FUNDS, "", "amount", available=available)
        self._flows.append((cmd.account_id, -cmd.amount))
        return []

    def _resolve(self, listing: _Listing, at: int, reason: CloseReason) -> Resolution:
        terms = listing.open_command.terms
        covered = listing.covered()
        listing.closed_at, listing.close_reason = at, reason
        if reason == "cancelled":
            listing.status = "cancelled"
            return ListingCancelled(terms.listing_id, at, covered)
        if covered < listing.required() or covered == 0:
            listing.status = "failed"
            return ListingFailed(terms.listing_id, at, reason, covered, listing.required())
        listing.status = "funded"
        allocated = listing.allocations()
        clearing = listing.clearing_rate_bps()
        fills = tuple(
            Fill(
                b.bid_id, b.lender_id, b.seq, allocated[b],
                clearing if terms.pricing == "uniform" else b.rate_bps,
            )
            for b in listing.funding_set()
        )
        if terms.pricing == "uniform":
            headline = clearing
        else:
            mean = Fraction(sum(f.amount * f.rate_bps for f in fills), covered)
            headline = _half_up(mean)
        fee = _half_up(Fraction(covered * terms.policy.service_fee_bps, 10_000))
        reserve = _half_up(Fraction(covered * terms.policy.reserve_bps, 10_000))
        self._flows += [(f.lender_id, -f.amount) for f in fills]
        self.orders.fills += [
            (b.order, allocated[b]) for b in listing.funding_set() if b.order is not None
        ]
        self._flows.append((terms.borrower_id, covered - fee - reserve))
        self._flows += [(account, due) for account, due in ((FEES, fee), (RESERVE_POOL, reserve))
                        if due]
        self._funded_principal.append((terms.borrower_id, covered))
        return ListingFunded(
            terms.listing_id, terms.loan_id, at, reason, covered, headline, terms.term_months,
            fills, fee, reserve,
        )

    # --- reads ------------------------------------------------------------------------------

    def balance(self, account: str) -> Balance | None:
        """From scratch: the account's final flows, less what its live bids hold."""
        flows = [amount for who, amount in self._flows if who == account]
        if not flows:
            return None
        reserved = sum(
            b.amount for listing in self._listings.values() for b in listing.live_bids()
            if b.lender_id == account
        )
        return Balance(sum(flows) - reserved, reserved)

    def available(self, account: str) -> int:
        balance = self.balance(account)
        return 0 if balance is None else balance.available

    def accounts(self) -> set[str]:
        return {who for who, _ in self._flows}

    def exposure(self, borrower_id: str) -> int:
        """Open listings' amounts plus funded principal."""
        open_amounts = sum(
            listing.amount for listing in self._listings.values()
            if listing.status == "open" and listing.open_command.terms.borrower_id == borrower_id
        )
        return open_amounts + sum(p for who, p in self._funded_principal if who == borrower_id)

    def summary(self, listing_id: str) -> ListingSummary | None:
        listing = self._listings.get(listing_id)
        if listing is None:
            return None
        return ListingSummary(
            listing.open_command.terms, listing.status, listing.open_command.seq,
            listing.open_command.at, listing.covered(), len(listing.bids),
            listing.marginal_rate_bps(), listing.closed_at, listing.close_reason,
            sum(1 for b in listing.bids if b.order is not None),
            sum(b.amount for b in listing.bids if b.order is not None),
        )

    def bids(self, listing_id: str) -> list[BidView] | None:
        listing = self._listings.get(listing_id)
        if listing is None:
            return None
        allocated = listing.allocations()
        lost = listing.status in ("failed", "cancelled")  # every bid released: nothing allocated
        return [
            BidView(
                listing_id, b.bid_id, b.lender_id, b.seq, b.amount, b.rate_bps,
                listing.bid_status(allocated[b]), 0 if lost else allocated[b], b.placed_at,
                None if b.order is None else b.order.order_id,
            )
            for b in listing.ranked()
        ]

    def bid(self, listing_id: str, seq: int) -> BidView | None:
        views = self.bids(listing_id) or []
        return next((v for v in views if v.seq == seq), None)

    def depth(self, listing_id: str) -> list[DepthLevel] | None:
        views = self.bids(listing_id)
        if views is None:
            return None
        rates = sorted({v.rate_bps for v in views})
        return [
            DepthLevel(
                rate,
                sum(v.amount for v in views if v.rate_bps == rate),
                sum(1 for v in views if v.rate_bps == rate),
                sum(v.allocated_amount for v in views if v.rate_bps == rate),
            )
            for rate in rates
        ]

    def release(self, listing_id: str) -> None:
        """Forget a closed listing, as the shell does once its resolution is stored."""
        listing = self._listings.get(listing_id)
        if listing is not None and listing.status != "open":
            del self._listings[listing_id]

    def listing_ids(self) -> list[str]:
        return list(self._listings)

    def _live_auto_bids(self) -> list[tuple[RefOrder, int]]:
        return [
            (b.order, b.amount) for listing in self._listings.values() for b in listing.live_bids()
            if b.order is not None
        ]


def _half_up(x: Fraction) -> int:
    """floor(x + 1/2) for x >= 0: rounded half up."""
    return int(x + Fraction(1, 2))
