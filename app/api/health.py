"""Liveness and readiness (no key needed), and Prometheus metrics (a key needed on this port).

/metrics tells anyone who reads it how busy the market is (bids, listings, outcomes), which is
not for lenders to see: on the API's port it takes the metrics key or an admin key. A Prometheus
that cannot send a bearer token scrapes `metrics_port` instead, kept on a private interface.
"""

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import Services, render_json
from app.api.guard import authenticate
from app.keys.service import hash_key
from app.settings import Settings

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Response:
    return render_json({"status": "ok"})


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> Response:
    """Ready when Postgres answers and the books are rebuilt."""
    svc: Services | None = getattr(request.app.state, "services", None)
    if svc is None or not svc.market.writable:
        return render_json({"status": "recovering"}, 503)
    try:
        await svc.market.store.ping()
    except Exception:
        return render_json({"status": "database_unavailable"}, 503)
    return render_json({"status": "ready"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text"}
    },
)
async def metrics(request: Request) -> Response:
    """`Authorization: Bearer` with the metrics key or an admin key."""
    authorization = request.headers.get("authorization")
    if not _is_metrics_key(request.app.state.settings, authorization):
        (await authenticate(request, authorization)).require("admin")
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


def _is_metrics_key(settings: Settings, authorization: str | None) -> bool:
    if settings.metrics_key is None or authorization is None:
        return False
    scheme, _, key = authorization.partition(" ")
    expected = hash_key(settings.metrics_key.get_secret_value())
    return scheme.lower() == "bearer" and hmac.compare_digest(hash_key(key.strip()), expected)
