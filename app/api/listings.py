"""/v1/listings: open, read, list, accept early, cancel."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import (
    AnyKey,
    Borrower,
    Idem,
    Svc,
    acting_for,
    problem_responses,
    render,
    render_json,
)
from app.api.guard import GuardedRoute
from app.api.schemas import GradeIn, ListingOut, ListingPage, OpenListingIn
from app.clock import to_micros
from app.market import NewListing

router = APIRouter(prefix="/v1/listings", tags=["listings"], route_class=GuardedRoute)


@router.post(
    "", status_code=201, response_model=ListingOut, responses=problem_responses(400, 409, 413, 422),
    summary="Open a listing",
)
async def open_listing(body: OpenListingIn, who: Borrower, svc: Svc, idem: Idem) -> Response:
    borrower_id = acting_for(who, body.borrower_id, "borrower_id")
    new = NewListing(
        borrower_id, body.amount, body.term_months, body.max_rate_bps, body.grade,
        None if body.closes_at is None else to_micros(body.closes_at), body.duration_s,
        body.min_funding_bps, body.close_when_funded, body.pricing,
    )
    return render(await svc.market.open_listing(who, new, idem))


@router.get("", response_model=ListingPage, responses=problem_responses(422))
async def list_listings(
    who: AnyKey,
    svc: Svc,
    status: Annotated[str | None, Query(pattern="^(open|funded|failed|cancelled)$")] = None,
    grade: GradeIn | None = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    return render_json(await svc.queries.listings(status, grade, cursor, limit))


@router.get("/{listing_id}", response_model=ListingOut, responses=problem_responses(404))
async def get_listing(listing_id: str, who: AnyKey, svc: Svc) -> Response:
    return render_json(await svc.queries.listing(listing_id))


@router.post(
    "/{listing_id}/accept", response_model=ListingOut, responses=problem_responses(404, 409, 422),
    summary="Accept early (coverage at least min_funding_bps)",
)
async def accept(listing_id: str, who: Borrower, svc: Svc, idem: Idem) -> Response:
    return render(await svc.market.accept(who, listing_id, idem))


@router.post(
    "/{listing_id}/cancel", response_model=ListingOut, responses=problem_responses(404, 409, 422),
    summary="Cancel; every bid is released",
)
async def cancel(listing_id: str, who: Borrower, svc: Svc, idem: Idem) -> Response:
    return render(await svc.market.cancel(who, listing_id, idem))
