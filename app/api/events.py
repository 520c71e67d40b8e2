"""/v1/events: the ordered, append-only event log (admin)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import Admin, Svc, problem_responses, render_json
from app.api.guard import GuardedRoute
from app.api.schemas import EventPage

EventType = Literal[
    "listing.opened", "bid.placed", "bid.outbid", "listing.funded", "listing.failed",
    "listing.cancelled",
]

router = APIRouter(prefix="/v1/events", tags=["events"], route_class=GuardedRoute)


@router.get("", response_model=EventPage, responses=problem_responses(422))
async def list_events(
    who: Admin,
    svc: Svc,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[list[EventType] | None, Query()] = None,
) -> Response:
    return render_json(await svc.queries.events(after, limit, list(type) if type else None))
