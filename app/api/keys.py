"""/v1/api-keys: mint a key for a role and subject (shown once), list keys, revoke one (admin)."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import Admin, Idem, Svc, problem_responses, render, render_json, shown_once
from app.api.guard import GuardedRoute
from app.api.schemas import SUBJECT_PATTERN, ApiKeyIn, ApiKeyOut, ApiKeyPage
from app.idempotency import Reply

if TYPE_CHECKING:
    from app.store import Connection

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], route_class=GuardedRoute)


@router.post(
    "", status_code=201, response_model=ApiKeyOut, responses=problem_responses(400, 413, 422)
)
async def create_key(body: ApiKeyIn, who: Admin, svc: Svc, idem: Idem) -> Response:
    async def mint(conn: "Connection") -> Reply:
        minted = await svc.keys.mint(body.role, body.subject, body.expires_at, body.ttl_s, conn)
        return shown_once(201, minted.json(), "key")

    return render(await svc.idempotency.transaction(idem, mint))


@router.get(
    "", response_model=ApiKeyPage, responses=problem_responses(422),
    summary="Keys, newest first: never the key, only its prefix",
)
async def list_keys(
    who: Admin,
    svc: Svc,
    subject: Annotated[
        str | None, Query(min_length=1, max_length=128, pattern=SUBJECT_PATTERN)
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    return render_json(await svc.keys.page(subject, cursor, limit))


@router.delete(
    "/{key_id}", status_code=204, responses=problem_responses(404),
    summary="Revoke; refused from its next request (again: 204)",
)
async def revoke_key(key_id: str, who: Admin, svc: Svc) -> Response:
    await svc.keys.revoke(key_id)
    return Response(status_code=204)
