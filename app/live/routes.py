"""The live view's HTTP edge: the two event streams, and the page with its static files."""

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from app.api.deps import Admin, AnyKey, problem_responses
from app.api.guard import GuardedRoute
from app.live.service import Live
from app.live.sse import EventStreamResponse

STATIC = Path(__file__).resolve().parent / "static"

LastEventId = Annotated[
    int | None,
    Header(
        ge=0, le=2**62,
        description="Resume after this event `seq` (the `id:` of the last event received).",
    ),
]
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events; `: keep-alive` comments while idle.",
        "content": {"text/event-stream": {"schema": {  # one event, as SSE clients see it
            "type": "object",
            "required": ["id", "event", "data"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$", "description": "its seq"},
                "event": {"type": "string", "description": "its type"},
                "data": {
                    "type": "string", "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/EventOut"},
                    "description": "the event as `GET /v1/events` shows it",
                },
                "retry": {"type": "integer"},
            },
        }}},
    },
}
#: The page holds an API key: it loads nothing from elsewhere and no one may frame it.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["live"], route_class=GuardedRoute)


def _live(request: Request) -> Live:
    live: Live = request.app.state.live
    return live


@router.get(
    "/v1/listings/{listing_id}/stream",
    status_code=200,
    response_class=EventStreamResponse,
    responses={**_STREAM, **problem_responses(404, 422)},
    summary="Watch one listing's events live (server-sent events)",
)
async def listing_stream(
    listing_id: str, who: AnyKey, request: Request, last_event_id: LastEventId = None
) -> Response:
    """From the listing's first event (or after `Last-Event-ID`), then live; ends after the
    listing's resolution event. Other lenders' ids are masked unless the key is an admin's."""
    return EventStreamResponse(await _live(request).listing_stream(who, listing_id, last_event_id))


@router.get(
    "/v1/events/stream",
    status_code=200,
    response_class=EventStreamResponse,
    responses={**_STREAM, **problem_responses(422)},
    summary="Every event live (server-sent events; admin)",
)
async def events_stream(
    who: Admin, request: Request, last_event_id: LastEventId = None
) -> Response:
    """From now (or after `Last-Event-ID`), every event, live."""
    return EventStreamResponse(_live(request).events_stream(who, last_event_id))


pages = APIRouter(include_in_schema=False)


@pages.get("/")
async def listings_page() -> Response:
    return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)


@pages.get("/auctions/{listing_id}")
async def auction_page(listing_id: str) -> Response:
    return FileResponse(STATIC / "auction.html", headers=_PAGE_HEADERS)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
