"""Bids: place one, read a listing's book and depth, read a lender's bids."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from app.api.deps import (
    AnyKey,
    Idem,
    Lender,
    Services,
    Svc,
    acting_for,
    parse_body,
    problem_responses,
    render,
    render_json,
)
from app.api.guard import GuardedRoute
from app.api.schemas import SUBJECT_PATTERN, BidList, BidOut, BidPage, DepthOut, PlaceBidIn
from app.auth import Principal
from app.idempotency import IdempotentRequest, Reply

router = APIRouter(tags=["bids"], route_class=GuardedRoute)
BID_PATH = "/v1/listings/{listing_id}/bids"


_BID_BODY = {"required": True, "content": {"application/json": {
    "schema": PlaceBidIn.model_json_schema(), "example": {"amount": 50_000, "min_rate_bps": 1250},
}}}


@router.post(
    BID_PATH, status_code=201, response_model=BidOut,
    responses=problem_responses(400, 404, 409, 413, 422), summary="Place a bid (binding)",
    openapi_extra={"requestBody": _BID_BODY},
)
async def place_bid(listing_id: str, request: Request, who: Lender, idem: Idem) -> Response:
    """The hot path, served by `app.api.lean.FastLane` when it is on: the lane checks the same
    `Requires` and Idempotency-Key, then calls `bid_reply` with the raw body as this does."""
    body = await request.body()
    return render(await bid_reply(
        request.app.state.services, who, listing_id, request.headers.get("content-type"), body,
        idem,
    ))


async def bid_reply(
    svc: Services, who: Principal, listing_id: str, content_type: str | None, body: bytes,
    idem: IdempotentRequest | None,
) -> Reply:
    """The body read by the same `PlaceBidIn` model, with FastAPI's rules (`parse_body`)."""
    bid = parse_body(PlaceBidIn, content_type, body)
    lender_id = acting_for(who, bid.lender_id, "lender_id")
    return await svc.market.place_bid(who, listing_id, lender_id, bid.amount, bid.min_rate_bps,
                                      idem)


@router.get(
    "/v1/listings/{listing_id}/bids",
    response_model=BidList,
    responses=problem_responses(404),
    summary="The book in priority order",
)
async def listing_bids(listing_id: str, who: AnyKey, svc: Svc) -> Response:
    return render_json(await svc.queries.listing_bids(who, listing_id))


@router.get(
    "/v1/listings/{listing_id}/book",
    response_model=DepthOut,
    responses=problem_responses(404),
    summary="Depth by rate level",
)
async def listing_depth(listing_id: str, who: AnyKey, svc: Svc) -> Response:
    return render_json(await svc.queries.depth(listing_id))


@router.get("/v1/bids/{bid_id}", response_model=BidOut, responses=problem_responses(404))
async def get_bid(bid_id: str, who: Lender, svc: Svc) -> Response:
    return render_json(await svc.queries.bid(who, bid_id))


@router.get(
    "/v1/lenders/{lender_id}/bids", response_model=BidPage, responses=problem_responses(422)
)
async def lender_bids(
    lender_id: Annotated[str, Path(min_length=1, max_length=128, pattern=SUBJECT_PATTERN)],
    who: Lender,
    svc: Svc,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    return render_json(await svc.queries.lender_bids(who, lender_id, cursor, limit))
