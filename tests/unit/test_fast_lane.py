"""The bid fast lane refuses, when the app is built, a route declaring anything it would skip."""

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from app.api.bids import BID_PATH
from app.api.bids import router as bids
from app.api.deps import Idem, Lender, Svc, services
from app.api.guard import GuardedRoute
from app.api.lean import LanePlan
from app.api.schemas import PlaceBidIn
from app.main import create_app
from app.settings import Settings


def _post(endpoint: Callable[..., Any], path: str = "/x/{listing_id}") -> APIRoute:
    router = APIRouter(route_class=GuardedRoute)
    router.post(path)(endpoint)
    route = router.routes[0]
    assert isinstance(route, APIRoute)
    return route


def test_the_lane_serves_the_bid_route_supplying_the_caller_and_the_idempotency_key() -> None:
    route = next(r for r in bids.routes if isinstance(r, APIRoute) and r.path == BID_PATH
                 and "POST" in (r.methods or ()))
    plan = LanePlan.of(route)
    assert (plan.request, plan.who, plan.idem, plan.guard.roles) == (
        "request", "who", "idem", ("lender", "admin"),
    )


async def _with_services(listing_id: str, request: Request, who: Lender, idem: Idem,
                         svc: Svc) -> Response:
    return Response()


async def _with_a_query(listing_id: str, request: Request, who: Lender, idem: Idem,
                        dry_run: bool = False) -> Response:
    return Response()


async def _with_a_body(listing_id: str, request: Request, who: Lender, idem: Idem,
                       body: PlaceBidIn) -> Response:
    return Response()


async def _with_a_checked_path(listing_id: Annotated[str, Path(max_length=36)], request: Request,
                               who: Lender, idem: Idem) -> Response:
    return Response()


async def _with_a_header(listing_id: str, request: Request, who: Lender, idem: Idem,
                         trace: Annotated[str | None, Header()] = None) -> Response:
    return Response()


async def _without_a_role(listing_id: str, request: Request, idem: Idem) -> Response:
    return Response()


@pytest.mark.parametrize("endpoint", [
    _with_services, _with_a_query, _with_a_body, _with_a_checked_path, _with_a_header,
    _without_a_role,
])
def test_the_lane_refuses_a_route_with_anything_it_would_skip(
    endpoint: Callable[..., Any],
) -> None:
    with pytest.raises(TypeError, match="fast lane cannot serve"):
        LanePlan.of(_post(endpoint))


async def _no_idempotency(listing_id: str, request: Request, who: Lender) -> Response:
    return Response()


def test_a_post_route_without_an_idempotency_key_cannot_be_declared() -> None:
    with pytest.raises(TypeError, match="must take an Idempotency-Key"):
        _post(_no_idempotency)


def test_a_dependency_added_where_the_bid_route_is_included_is_refused_too() -> None:
    assert LanePlan.for_app(create_app(Settings()), "POST", BID_PATH).who == "who"
    app = FastAPI()
    app.include_router(bids, dependencies=[Depends(services)])  # router-level, as served
    with pytest.raises(TypeError, match="fast lane cannot serve"):
        LanePlan.for_app(app, "POST", BID_PATH)
