"""Naive standing orders for the reference engine, written from docs/automation.md alone.

Every order ever created sits in one plain list, deleted ones too. Nothing is indexed and
nothing about money is kept: an order's reserved money is the sum of its live auto bids and its
settled money the sum of its fills, recomputed on every question; the orders that bid on a
listing are found by testing every order and sorting the survivors by ticket. Only the ORDER of
the validation checks is taken from `matching.standing_orders`, a choice the rules leave open.
"""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from matching import rejections as r
from matching.commands import (
    CreateStandingOrder,
    DeleteStandingOrder,
    ListingTerms,
    UpdateStandingOrder,
)
from matching.rejections import Rejection
from matching.rules import Grade, MarketRules
from matching.standing_orders import StandingOrderView

GRADES: tuple[Grade, ...] = ("AA", "A", "B", "C", "D", "E", "HR")


@dataclass(eq=False)
class RefOrder:
    """Compared by identity: an id may come back once a deleted order is gone, as a new one."""

    cmd: CreateStandingOrder
    ticket: int
    active: bool
    budget: int
    deleted: bool = False

    @property
    def order_id(self) -> str:
        return self.cmd.order_id

    @property
    def grades(self) -> tuple[Grade, ...]:
        return tuple(g for g in GRADES if g in self.cmd.grades)

    def matches(self, terms: ListingTerms) -> bool:
        c = self.cmd
        return (
            terms.grade in c.grades and c.term_months_min <= terms.term_months <= c.term_months_max
            and c.min_rate_bps <= terms.max_rate_bps
        )


def auto_bid_id(listing_id: str, order_id: str) -> str:
    """RFC 9562 UUIDv8 from the first 128 bits of SHA-256 over `listing_id NUL order_id`."""
    digest = hashlib.sha256(listing_id.encode() + b"\0" + order_id.encode()).digest()
    value = int.from_bytes(digest[:16], "big")
    value = (value & ~(0xF << 76)) | (0x8 << 76)  # version: the high nibble of byte 6
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant: the top two bits of byte 8 are 10
    return str(uuid.UUID(int=value))


#: (order, amount) of every live auto bid: in the funding set of a listing still open.
LiveAutoBids = Callable[[], list[tuple[RefOrder, int]]]


class ReferenceOrders:
    def __init__(self, rules: MarketRules, live_auto_bids: LiveAutoBids) -> None:
        self.rules = rules
        self.live_auto_bids = live_auto_bids
        self.orders: list[RefOrder] = []
        self.fills: list[tuple[RefOrder, int]] = []  # every fill of an auto bid, ever
        self.last_ticket = 0

    # --- money, from scratch ----------------------------------------------------------------

    def reserved(self, order: RefOrder) -> int:
        return sum(amount for o, amount in self.live_auto_bids() if o is order)

    def settled(self, order: RefOrder) -> int:
        return sum(amount for o, amount in self.fills if o is order)

    def budget_left(self, order: RefOrder) -> int:
        return max(0, order.budget - self.reserved(order) - self.settled(order))

    def in_memory(self, order: RefOrder) -> bool:
        """Alive, or deleted with bids still live."""
        return not order.deleted or self.reserved(order) > 0

    def find(self, order_id: str) -> RefOrder | None:
        found = [o for o in self.orders if o.order_id == order_id and self.in_memory(o)]
        assert len(found) <= 1
        return found[0] if found else None

    # --- commands ---------------------------------------------------------------------------

    def create(self, cmd: CreateStandingOrder) -> StandingOrderView | Rejection:
        if self.find(cmd.order_id) is not None:
            return Rejection(r.STANDING_ORDER_EXISTS, "", "order_id")
        rules = self.rules
        if len(cmd.grades) == 0 or not set(cmd.grades) <= set(GRADES):
            return Rejection(r.UNKNOWN_GRADE, "", "grades")
        if cmd.term_months_min < 1 or cmd.term_months_min > rules.max_term_months:
            return Rejection(r.TERM_OUT_OF_RANGE, "", "term_months_min")
        if cmd.term_months_max < 1 or cmd.term_months_max > rules.max_term_months:
            return Rejection(r.TERM_OUT_OF_RANGE, "", "term_months_max")
        if cmd.term_months_max < cmd.term_months_min:
            return Rejection(r.TERM_RANGE_INVERTED, "", "term_months_min")
        if cmd.min_rate_bps < 1 or cmd.min_rate_bps > rules.legal_rate_cap_bps:
            return Rejection(r.RATE_OUT_OF_RANGE, "", "min_rate_bps")
        if cmd.amount_per_listing < rules.min_bid_amount:
            return Rejection(r.BID_BELOW_MINIMUM, "", "amount_per_listing")
        if cmd.budget < cmd.amount_per_listing:
            return Rejection(r.BUDGET_BELOW_AMOUNT, "", "budget")
        self.last_ticket += 1
        order = RefOrder(cmd, self.last_ticket, cmd.active, cmd.budget)
        self.orders.append(order)
        return self.view(order)

    def update(self, cmd: UpdateStandingOrder) -> StandingOrderView | Rejection:
        order = self.find(cmd.order_id)
        if order is None or order.deleted:
            return Rejection(r.STANDING_ORDER_NOT_FOUND, "")
        if cmd.budget is not None and cmd.budget < order.cmd.amount_per_listing:
            return Rejection(r.BUDGET_BELOW_AMOUNT, "", "budget")
        if cmd.active is not None:
            order.active = cmd.active
        if cmd.budget is not None:
            order.budget = cmd.budget
        return self.view(order)

    def delete(self, cmd: DeleteStandingOrder) -> StandingOrderView | Rejection:
        order = self.find(cmd.order_id)
        if order is None or order.deleted:
            return Rejection(r.STANDING_ORDER_NOT_FOUND, "")
        order.deleted = True
        return self.view(order)

    # --- bidding ------------------------------------------------------------------------------

    def queue(self, terms: ListingTerms) -> list[RefOrder]:
        """Every order that may bid on the listing, by ticket: a scan of all of them."""
        may_bid = [
            o for o in self.orders
            if o.active and not o.deleted and o.matches(terms)
            and self.budget_left(o) >= self.rules.min_bid_amount
        ]
        return sorted(may_bid, key=lambda o: o.ticket)

    def to_the_back(self, bidders: list[RefOrder]) -> None:
        for order in bidders:
            self.last_ticket += 1
            order.ticket = self.last_ticket

    # --- reads ------------------------------------------------------------------------------

    def view(self, order: RefOrder) -> StandingOrderView:
        c = order.cmd
        return StandingOrderView(
            c.order_id, c.lender_id, order.grades, c.term_months_min, c.term_months_max,
            c.min_rate_bps, c.amount_per_listing, order.budget, order.active, order.deleted,
            order.ticket, self.reserved(order), self.settled(order), c.seq, c.at,
        )

    def views(self) -> dict[str, StandingOrderView]:
        """Every order still in memory (alive, or deleted with live bids), by id."""
        return {o.order_id: self.view(o) for o in self.orders if self.in_memory(o)}
