"""Standing orders' rules in the shell: who may act on an order (its lender or an admin), and
turning requests into engine commands that go through the journal like bids (a 2xx means the
change is committed, and an Idempotency-Key makes a retry safe). The order's own rules
(grades, terms, budget, ...) are the engine's (`matching.standing_orders`).

Reads come from the engine, which holds every order not deleted; listing pages from Postgres.
"""

from collections.abc import Callable
from dataclasses import replace

import orjson

from app.auth import Principal
from app.errors import NotFound
from app.idempotency import IdempotentRequest, Reply
from app.market import Acted, Guard, Market, canonical_id
from app.pagination import decode_cursor, page
from app.rendering import Json, standing_order_json
from app.standing_orders.store import StandingOrderStore
from matching import (
    CreateStandingOrder,
    DeleteStandingOrder,
    Event,
    Rejection,
    StandingOrderChanged,
    StandingOrderView,
    UpdateStandingOrder,
)
from matching.rejections import STANDING_ORDER_NOT_FOUND

Change = CreateStandingOrder | UpdateStandingOrder | DeleteStandingOrder


class StandingOrders:
    def __init__(self, market: Market, store: StandingOrderStore) -> None:
        self.market = market
        self.store = store

    # --- writes -----------------------------------------------------------------------------

    async def create(
        self, who: Principal, order: CreateStandingOrder, idem: IdempotentRequest | None
    ) -> Reply:
        """`order` as asked; its `seq` and `at` are set here, in engine order, when it runs."""
        who.require("lender", "admin")
        who.require_subject(order.lender_id)
        market = self.market
        return await self._change(
            idem, lambda: replace(order, seq=market.next_seq(), at=market.clock.now()), 201
        )

    async def update(
        self, who: Principal, order_id: str, active: bool | None, budget: int | None,
        idem: IdempotentRequest | None,
    ) -> Reply:
        """Pause or resume (`active`), or change the budget; the order keeps its place."""
        who.require("lender", "admin")
        order_id = canonical_id(order_id)
        return await self._change(
            idem,
            lambda: UpdateStandingOrder(order_id, active, budget, self.market.clock.now()),
            200, lambda: self._require_owner(who, order_id),
        )

    async def delete(
        self, who: Principal, order_id: str, idem: IdempotentRequest | None
    ) -> Reply:
        """The order bids no more; its live bids stay (bids are binding)."""
        who.require("lender", "admin")
        order_id = canonical_id(order_id)
        return await self._change(
            idem, lambda: DeleteStandingOrder(order_id, self.market.clock.now()),
            204, lambda: self._require_owner(who, order_id),
        )

    # --- reads ------------------------------------------------------------------------------

    def get(self, who: Principal, order_id: str) -> Json:
        who.require("lender", "admin")
        view = self._order(canonical_id(order_id))
        who.require_subject(view.lender_id)
        return standing_order_json(view)

    async def list(
        self, who: Principal, lender_id: str | None, cursor: str | None, limit: int
    ) -> Json:
        """A lender's orders (its own, or any lender's for an admin; every order for an admin
        who names none), newest first."""
        who.require("lender", "admin")
        if lender_id is None and who.role == "lender":
            lender_id = who.subject
        if lender_id is not None:
            who.require_subject(lender_id)
        rows = await self.store.page(lender_id, decode_cursor(cursor), limit)
        data = []
        for row in rows:  # the engine's state is the newest; an order deleted meanwhile is gone
            view = self.market.engine.standing_order(str(row["id"]))
            if view is not None:
                data.append(standing_order_json(view))
        return page(data, rows, limit)

    # --- internals --------------------------------------------------------------------------

    def _order(self, order_id: str) -> StandingOrderView:
        view = self.market.engine.standing_order(order_id)
        if view is None:
            raise NotFound(STANDING_ORDER_NOT_FOUND, "no standing order with this id")
        return view

    async def _require_owner(self, who: Principal, order_id: str) -> None:
        who.require_subject(self._order(order_id).lender_id)

    async def _change(
        self, idem: IdempotentRequest | None, command: Callable[[], Change], status: int,
        guard: Guard | None = None,
    ) -> Reply:
        """Run the command `command` makes (inside the write: its seq and time are current)."""
        market = self.market  # its engine is read when the command runs: a rebuild replaces it
        return await market.write(
            idem, lambda: _answer(market.engine.change_standing_order(command()), status), guard
        )


def _answer(outcome: list[Event] | Rejection, status: int) -> Acted:
    if isinstance(outcome, Rejection):
        return outcome
    changed = outcome[0]
    assert isinstance(changed, StandingOrderChanged)
    body = b"" if status == 204 else orjson.dumps(standing_order_json(changed.order))
    return outcome, lambda: Reply(status, body)

