"""/v1/standing-orders: lenders' automatic bidding (docs/automation.md)."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import (
    Idem,
    Lender,
    Svc,
    acting_for,
    problem_responses,
    render,
    render_json,
)
from app.api.guard import GuardedRoute
from app.api.schemas import (
    StandingOrderIn,
    StandingOrderOut,
    StandingOrderPage,
    StandingOrderPatch,
    SubjectId,
)
from app.idempotency import Reply
from app.ids import new_id
from matching import CreateStandingOrder

router = APIRouter(
    prefix="/v1/standing-orders", tags=["standing orders"], route_class=GuardedRoute
)


@router.post(
    "", status_code=201, response_model=StandingOrderOut,
    responses=problem_responses(400, 409, 413, 422), summary="Create a standing order",
)
async def create(body: StandingOrderIn, who: Lender, svc: Svc, idem: Idem) -> Response:
    """A lender for itself, or an admin naming the lender. It bids on listings that open from
    now on and match it, in queue order."""
    lender_id = acting_for(who, body.lender_id, "lender_id")
    order = CreateStandingOrder(  # seq and at are the market's to set, when it runs
        new_id(), lender_id, tuple(body.grades), body.term_months_min, body.term_months_max,
        body.min_rate_bps, body.amount_per_listing, body.budget, seq=0, at=0, active=body.active,
    )
    return render(await svc.standing_orders.create(who, order, idem))


@router.get("", response_model=StandingOrderPage, responses=problem_responses(422))
async def list_orders(
    who: Lender,
    svc: Svc,
    lender_id: Annotated[SubjectId | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """A lender's orders, newest first (a lender sees its own; an admin any lender's, or all)."""
    return render_json(await svc.standing_orders.list(who, lender_id, cursor, limit))


@router.get("/{order_id}", response_model=StandingOrderOut, responses=problem_responses(404))
async def get(order_id: str, who: Lender, svc: Svc) -> Response:
    return render_json(svc.standing_orders.get(who, order_id))


@router.patch(
    "/{order_id}", response_model=StandingOrderOut,
    responses=problem_responses(400, 404, 413, 422), summary="Pause, resume or re-budget",
)
async def update(
    order_id: str, body: StandingOrderPatch, who: Lender, svc: Svc, idem: Idem
) -> Response:
    """The order keeps its place in the queue."""
    return render(
        await svc.standing_orders.update(who, order_id, body.active, body.budget, idem)
    )


@router.delete(
    "/{order_id}", status_code=204, response_class=Response,
    responses=problem_responses(404, 422), summary="Delete (its live bids stay)",
)
async def delete(order_id: str, who: Lender, svc: Svc, idem: Idem) -> Response:
    return _no_content(await svc.standing_orders.delete(who, order_id, idem))


def _no_content(reply: Reply) -> Response:
    """204 with no body; a refusal the market decided (a stored 404, say) keeps its problem."""
    if reply.status >= 400:
        return render(reply)
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    return Response(status_code=reply.status, headers=headers)
