"""Bids: place one, read a listing's book and depth, read a lender's bids."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import Caller, Idem, Svc, problem_responses, render, render_json
from app.api.schemas import BidList, BidOut, BidPage, DepthOut, PlaceBidIn
from app.errors import Invalid

router = APIRouter(tags=["bids"])


@router.post(
    "/v1/listings/{listing_id}/bids", status_code=201, response_model=BidOut,
    responses=problem_responses(400, 404, 409, 413, 422), summary="Place a bid (binding)",
)
async def place_bid(
    listing_id: str, body: PlaceBidIn, who: Caller, svc: Svc, idem: Idem
) -> Response:
    lender_id = body.lender_id or (who.subject if who.role == "lender" else None)
    if lender_id is None:
        raise Invalid("validation_error", "an admin must name the lender_id",
                      extra={"errors": [{"field": "lender_id", "message": "required for admin"}]})
    reply = await svc.market.place_bid(who, listing_id, lender_id, body.amount, body.min_rate_bps, idem)
    return render(reply)


@router.get(
    "/v1/listings/{listing_id}/bids", response_model=BidList, responses=problem_responses(404),
    summary="The book in priority order",
)
async def listing_bids(listing_id: str, who: Caller, svc: Svc) -> Response:
    return render_json(await svc.queries.listing_bids(listing_id))


@router.get(
    "/v1/listings/{listing_id}/book", response_model=DepthOut, responses=problem_responses(404),
    summary="Depth by rate level",
)
async def listing_depth(listing_id: str, who: Caller, svc: Svc) -> Response:
    return render_json(await svc.queries.depth(listing_id))


@router.get("/v1/bids/{bid_id}", response_model=BidOut, responses=problem_responses(404))
async def get_bid(bid_id: str, who: Caller, svc: Svc) -> Response:
    return render_json(await svc.queries.bid(who, bid_id))


@router.get(
    "/v1/lenders/{lender_id}/bids", response_model=BidPage, responses=problem_responses(422)
)
async def lender_bids(
    lender_id: str,
    who: Caller,
    svc: Svc,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    return render_json(await svc.queries.lender_bids(who, lender_id, cursor, limit))
