"""Liveness and readiness (no key needed), and Prometheus metrics (a key needed on this port).

/metrics tells anyone who reads it how busy the market is (bids, listings, outcomes), which is
not for lenders to see: on the API's port it takes the metrics key or an admin key. A Prometheus
that cannot send a bearer token scrapes `metrics_port` instead, kept on a private interface.
"""

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr

from app.api.deps import Services, render_json
from app.api.guard import authenticate
from app.errors import Unauthorized
from app.fence.role import Role
from app.keys.service import hash_key
from app.settings import Settings

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Response:
    return render_json({"status": "ok"})


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> Response:
    """Ready when this instance is the writer, Postgres answers and the books are rebuilt.
    A standby answers 503 `{"status": "standby", "code": "standby"}`."""
    role: Role = request.app.state.role
    if not role.writer:
        return render_json({"status": role.state, "code": role.state}, 503)
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
    """`Authorization: Bearer` with the metrics key or an admin key. The configured keys are
    checked from the settings, so a standby (which looks up no key in Postgres) serves them."""
    authorization = request.headers.get("authorization")
    settings: Settings = request.app.state.settings
    configured = (settings.metrics_key, settings.admin_key)
    if not any(_is_key(key, authorization) for key in configured):
        role: Role = request.app.state.role
        if not role.writer:
            raise Unauthorized("unauthorized", "a standby takes the metrics or admin key only")
        (await authenticate(request, authorization)).require("admin")
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


def _is_key(secret: SecretStr | None, authorization: str | None) -> bool:
    if secret is None or authorization is None:
        return False
    scheme, _, key = authorization.partition(" ")
    expected = hash_key(secret.get_secret_value())
    return scheme.lower() == "bearer" and hmac.compare_digest(hash_key(key.strip()), expected)
