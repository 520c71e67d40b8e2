"""Standing orders (automatic bidding): a lender's order to bid on every listing that opens and
matches it, out of a budget, in a fair queue (docs/automation.md).

An order's money: `reserved` is what its live auto bids hold, `settled` what their fills paid
over its life; `budget - reserved - settled` is what it may still commit. An outbid or a failed
listing gives budget back (reserved falls); a fill moves its part from reserved to settled.

The queue: one ticket counter for all orders. Creating an order takes the next ticket, and so
does an order each time it bids (it goes to the back); the smallest ticket bids first. An order
is in the index (`OrderIndex`) exactly while it may bid: active, not deleted, and with at least
the minimum bid of budget left. A deleted order stays in memory, out of the index, until its
last live bid is released or settled.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from matching import rejections as r
from matching.commands import CreateStandingOrder, DeleteStandingOrder, UpdateStandingOrder
from matching.order_index import OrderIndex
from matching.rejections import Rejection
from matching.rules import GRADES, Grade, MarketRules


@dataclass(frozen=True, slots=True)
class StandingOrderView:
    """A standing order as a command left it: what reads show and the journal stores."""

    order_id: str
    lender_id: str
    grades: tuple[Grade, ...]  # best grade first, no repeats
    term_months_min: int
    term_months_max: int
    min_rate_bps: int
    amount_per_listing: int
    budget: int
    active: bool
    deleted: bool
    ticket: int  # place in the queue: the smallest bids first
    reserved: int
    settled: int
    created_seq: int
    created_at: int

    @property
    def budget_left(self) -> int:
        return max(0, self.budget - self.reserved - self.settled)


@dataclass(slots=True)
class StandingOrder:
    order_id: str
    lender_id: str
    grades: tuple[Grade, ...]
    term_months_min: int
    term_months_max: int
    min_rate_bps: int
    amount_per_listing: int
    budget: int
    active: bool
    created_seq: int
    created_at: int
    ticket: int
    reserved: int = 0
    settled: int = 0
    deleted: bool = False
    indexed: bool = False

    @property
    def budget_left(self) -> int:
        return max(0, self.budget - self.reserved - self.settled)

    def view(self) -> StandingOrderView:
        return StandingOrderView(
            self.order_id, self.lender_id, self.grades, self.term_months_min,
            self.term_months_max, self.min_rate_bps, self.amount_per_listing, self.budget,
            self.active, self.deleted, self.ticket, self.reserved, self.settled,
            self.created_seq, self.created_at,
        )


def check_order(cmd: CreateStandingOrder, rules: MarketRules) -> Rejection | None:
    """An order's own fields against the market's limits. O(grades)."""
    max_term, cap = rules.max_term_months, rules.legal_rate_cap_bps
    checks = (
        (not cmd.grades or any(g not in GRADES for g in cmd.grades), r.UNKNOWN_GRADE, "grades",
         f"grades are one or more of {GRADES}"),
        (not 1 <= cmd.term_months_min <= max_term, r.TERM_OUT_OF_RANGE, "term_months_min",
         f"term is 1 to {max_term} months"),
        (not 1 <= cmd.term_months_max <= max_term, r.TERM_OUT_OF_RANGE, "term_months_max",
         f"term is 1 to {max_term} months"),
        (cmd.term_months_min > cmd.term_months_max, r.TERM_RANGE_INVERTED, "term_months_min",
         "term_months_min is at most term_months_max"),
        (not 1 <= cmd.min_rate_bps <= cap, r.RATE_OUT_OF_RANGE, "min_rate_bps",
         f"a rate is 1 to {cap} bps"),
        (cmd.amount_per_listing < rules.min_bid_amount, r.BID_BELOW_MINIMUM,
         "amount_per_listing", f"a bid is at least {rules.min_bid_amount}"),
        (cmd.budget < cmd.amount_per_listing, r.BUDGET_BELOW_AMOUNT, "budget",
         "the budget is at least amount_per_listing"),
    )
    for failed, code, field, detail in checks:
        if failed:
            return Rejection(code, detail, field)
    return None


class StandingOrders:
    """Every order still alive, the ticket counter and the index of those that may bid."""

    __slots__ = ("_rules", "_min_bid", "_orders", "_by_ticket", "_index", "last_ticket", "_reading")

    def __init__(self, rules: MarketRules) -> None:
        self._rules = rules
        self._min_bid = rules.min_bid_amount
        self._orders: dict[str, StandingOrder] = {}
        self._by_ticket: dict[int, StandingOrder] = {}  # the indexed orders
        self._index = OrderIndex(rules.max_term_months, rules.legal_rate_cap_bps)
        self.last_ticket = 0
        self._reading = False  # a `matching` query is being read: the index must not change

    # --- commands: O(g · log T · log V) for an order of g grades (the index) -----------------

    def create(self, cmd: CreateStandingOrder) -> StandingOrderView | Rejection:
        if cmd.order_id in self._orders:
            return Rejection(r.STANDING_ORDER_EXISTS, "id already used", "order_id")
        rejection = check_order(cmd, self._rules)
        if rejection is not None:
            return rejection
        grades = tuple(g for g in GRADES if g in cmd.grades)
        order = StandingOrder(
            cmd.order_id, cmd.lender_id, grades, cmd.term_months_min, cmd.term_months_max,
            cmd.min_rate_bps, cmd.amount_per_listing, cmd.budget, cmd.active, cmd.seq, cmd.at,
            self._next_ticket(),
        )
        self._orders[order.order_id] = order
        self._index_if_eligible(order)
        return order.view()

    def update(self, cmd: UpdateStandingOrder) -> StandingOrderView | Rejection:
        """Pause, resume or change the budget; the order keeps its place in the queue."""
        order = self._live(cmd.order_id)
        if order is None:
            return Rejection(r.STANDING_ORDER_NOT_FOUND, "no standing order with this id")
        if cmd.budget is not None and cmd.budget < order.amount_per_listing:
            return Rejection(
                r.BUDGET_BELOW_AMOUNT, "the budget is at least amount_per_listing", "budget"
            )
        self._unindex(order)
        if cmd.active is not None:
            order.active = cmd.active
        if cmd.budget is not None:
            order.budget = cmd.budget
        self._index_if_eligible(order)
        return order.view()

    def delete(self, cmd: DeleteStandingOrder) -> StandingOrderView | Rejection:
        order = self._live(cmd.order_id)
        if order is None:
            return Rejection(r.STANDING_ORDER_NOT_FOUND, "no standing order with this id")
        self._unindex(order)
        order.deleted = True
        self._forget_if_done(order)
        return order.view()

    # --- bidding ------------------------------------------------------------------------------

    def matching(self, grade: Grade, term: int, max_rate: int) -> Iterator[StandingOrder]:
        """The orders that may bid on such a listing, in queue order, lazily: O(log T · log V)
        to start, O(log V · log h) per order (see `OrderIndex`). While it is read, bids may
        `reserve` but nothing may leave or enter the index; `took_turns` ends the reading."""
        self._reading = True
        for ticket in self._index.tickets(grade, term, max_rate):
            yield self._by_ticket[ticket]

    def reserve(self, order: StandingOrder, amount: int) -> None:
        """An auto bid of this order was placed. O(1); its new ticket comes in `took_turns`."""
        order.reserved += amount

    def took_turns(self, bidders: list[StandingOrder]) -> list[StandingOrderView]:
        """The orders that bid on a listing go to the back of the queue, in the order they bid
        (and out of the index if their budget ran out). O(bidders · g · log T · log V)."""
        self._reading = False
        for order in bidders:
            new = self._next_ticket()
            if self._eligible(order):
                self._index.move_to_back(
                    order.ticket, new, order.grades, order.term_months_min,
                    order.term_months_max, order.min_rate_bps,
                )
                del self._by_ticket[order.ticket]
                self._by_ticket[new] = order
            else:  # its budget ran out
                self._unindex(order)
            order.ticket = new
        return [order.view() for order in bidders]

    def release(self, order_id: str, amount: int) -> StandingOrderView:
        """An auto bid of the order was released (outbid, failed, cancelled, a fill's rest):
        the budget comes back, and the order with it into the index if it had left."""
        order = self._orders[order_id]
        assert not self._reading, "auto bids at an opening never release"
        order.reserved -= amount
        if not self._forget_if_done(order):
            self._index_if_eligible(order)
        return order.view()

    def settle(self, order_id: str, amount: int) -> StandingOrderView:
        """A fill of an auto bid: committed for good. The budget left does not change."""
        order = self._orders[order_id]
        order.reserved -= amount
        order.settled += amount
        self._forget_if_done(order)
        return order.view()

    # --- reads and recovery ----------------------------------------------------------------

    def view(self, order_id: str) -> StandingOrderView | None:
        """A live (not deleted) order. O(1)."""
        order = self._live(order_id)
        return None if order is None else order.view()

    def restore(self, stored: StandingOrderView) -> None:
        """Put back an order as stored, with its ticket and money (recovery)."""
        order = StandingOrder(
            stored.order_id, stored.lender_id, stored.grades, stored.term_months_min,
            stored.term_months_max, stored.min_rate_bps, stored.amount_per_listing,
            stored.budget, stored.active, stored.created_seq, stored.created_at, stored.ticket,
            stored.reserved, stored.settled, stored.deleted,
        )
        self._orders[order.order_id] = order
        self._index_if_eligible(order)

    def all_views(self) -> list[StandingOrderView]:
        """Every order in memory, deleted ones with live bids included. O(orders)."""
        return [order.view() for order in self._orders.values()]

    def check_invariants(self, live: dict[str, int]) -> None:
        """Each order's reserved is its live auto bids; the index holds exactly the orders
        that may bid; tickets are unique. O(orders · g · log T + entries)."""
        assert not self._reading
        tickets = [o.ticket for o in self._orders.values()]
        assert len(set(tickets)) == len(tickets), "tickets are unique"
        assert all(0 < t <= self.last_ticket for t in tickets)
        assert set(live) <= set(self._orders), "a live auto bid of a forgotten order"
        want: set[tuple[Grade, int, int, int]] = set()
        for order in self._orders.values():
            assert order.reserved == live.get(order.order_id, 0), order
            assert order.reserved >= 0 and order.settled >= 0
            assert not order.deleted or order.reserved > 0, "a deleted order is kept while live"
            assert order.indexed == self._eligible(order), order
            if order.indexed:
                assert self._by_ticket[order.ticket] is order
                want |= self._index.expected_entries(
                    order.ticket, order.grades, order.term_months_min, order.term_months_max,
                    order.min_rate_bps,
                )
        assert len(self._by_ticket) == sum(o.indexed for o in self._orders.values())
        # The index's own tree invariants are checked after every step of its tests
        # (tests/unit/test_order_index.py); here, that it holds exactly the orders that may bid.
        assert self._index.entries() == want

    # --- internals --------------------------------------------------------------------------

    def _live(self, order_id: str) -> StandingOrder | None:
        order = self._orders.get(order_id)
        return None if order is None or order.deleted else order

    def _next_ticket(self) -> int:
        self.last_ticket += 1
        return self.last_ticket

    def _eligible(self, order: StandingOrder) -> bool:
        return order.active and not order.deleted and order.budget_left >= self._min_bid

    def _index_if_eligible(self, order: StandingOrder) -> None:
        if order.indexed or not self._eligible(order):
            return
        self._index.add(
            order.ticket, order.grades, order.term_months_min, order.term_months_max,
            order.min_rate_bps,
        )
        self._by_ticket[order.ticket] = order
        order.indexed = True

    def _unindex(self, order: StandingOrder) -> None:
        if not order.indexed:
            return
        self._index.remove(
            order.ticket, order.grades, order.term_months_min, order.term_months_max,
            order.min_rate_bps,
        )
        del self._by_ticket[order.ticket]
        order.indexed = False

    def _forget_if_done(self, order: StandingOrder) -> bool:
        """A deleted order leaves memory with its last live bid. True if it left."""
        if order.deleted and order.reserved == 0:
            del self._orders[order.order_id]
            return True
        return False
