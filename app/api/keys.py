"""/v1/api-keys (admin): mint a key for a role and subject (shown once), list, revoke."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.api.deps import Caller, Svc, problem_responses, render_json
from app.api.schemas import SUBJECT_PATTERN, ApiKeyIn, ApiKeyOut, ApiKeyPage

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post(
    "", status_code=201, response_model=ApiKeyOut, responses=problem_responses(400, 413, 422)
)
async def create_key(body: ApiKeyIn, who: Caller, svc: Svc) -> Response:
    who.require("admin")
    minted = await svc.keys.mint(body.role, body.subject, body.expires_at, body.ttl_s)
    return render_json(minted.json(), 201)


@router.get(
    "", response_model=ApiKeyPage, responses=problem_responses(422),
    summary="Keys, newest first: never the key, only its prefix",
)
async def list_keys(
    who: Caller,
    svc: Svc,
    subject: Annotated[
        str | None, Query(min_length=1, max_length=128, pattern=SUBJECT_PATTERN)
    ] = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    who.require("admin")
    return render_json(await svc.keys.page(subject, cursor, limit))


@router.delete(
    "/{key_id}", status_code=204, responses=problem_responses(404),
    summary="Revoke; refused from its next request (again: 204)",
)
async def revoke_key(key_id: str, who: Caller, svc: Svc) -> Response:
    who.require("admin")
    await svc.keys.revoke(key_id)
    return Response(status_code=204)
