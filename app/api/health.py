"""Liveness, readiness and Prometheus metrics (no key needed)."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import Services, render_json
from app.fence.role import Role

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
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
