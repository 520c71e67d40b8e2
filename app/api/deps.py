"""What every route needs: the caller, the services, idempotency, and rendering a Reply."""

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Request
from fastapi.responses import Response

from app.api.schemas import Problem
from app.auth import Keys, Principal
from app.errors import Invalid
from app.idempotency import IdempotentRequest, Reply
from app.market import Market
from app.queries import Queries
from app.ratelimit import RateLimiter
from app.webhooks.service import Webhooks


@dataclass(slots=True)
class Services:
    market: Market
    queries: Queries
    keys: Keys
    limiter: RateLimiter
    webhooks: Webhooks


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> Principal:
    svc = services(request)
    who = await svc.keys.authenticate(authorization)
    svc.limiter.check(f"{who.role}:{who.subject}")
    return who


async def idempotent(
    request: Request,
    idempotency_key: Annotated[
        str | None, Header(max_length=255, description="Retry-safe key; stored at least 24 h")
    ] = None,
) -> IdempotentRequest | None:
    if idempotency_key is None:
        return None
    if not idempotency_key.strip():
        raise Invalid("validation_error", "Idempotency-Key is empty",
                      extra={"errors": [{"field": "Idempotency-Key", "message": "empty"}]})
    who: Principal = request.state.principal
    body = await request.body()
    return IdempotentRequest.of(
        f"{who.role}:{who.subject}", idempotency_key, request.method, request.url.path, body
    )


async def caller(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    request.state.principal = who
    return who


Caller = Annotated[Principal, Depends(caller)]
Svc = Annotated[Services, Depends(services)]
Idem = Annotated[IdempotentRequest | None, Depends(idempotent)]


def render_json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def render(reply: Reply) -> Response:
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    return Response(reply.body, reply.status, headers=headers, media_type="application/json")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route can give."""
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in (401, 403, 429, 503, *statuses)
    }
