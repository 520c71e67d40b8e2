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


#: Every error `code` the API gives, by status, for the OpenAPI examples.
PROBLEM_CODES: dict[int, tuple[str, ...]] = {
    400: ("malformed_body",),
    401: ("unauthorized",),
    403: ("forbidden_role", "forbidden_subject"),
    404: ("listing_not_found", "bid_not_found", "loan_not_found", "event_not_found",
          "webhook_endpoint_not_found", "not_found"),
    409: ("listing_not_open", "bid_not_competitive", "below_min_funding"),
    413: ("payload_too_large",),
    422: ("validation_error", "idempotency_key_reused", "rate_above_max", "rate_out_of_range",
          "bid_below_minimum", "bid_above_listing_amount", "amount_out_of_range",
          "term_out_of_range", "window_out_of_range", "min_funding_out_of_range", "invalid_cursor"),
    429: ("rate_limited",),
    503: ("database_unavailable",),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries, with an example per code, for the problem responses a route can give."""
    return {
        status: {
            "model": Problem,
            "content": {"application/problem+json": {"examples": {
                code: {"value": _example(status, code)} for code in PROBLEM_CODES[status]
            }}},
        }
        for status in (401, 403, 429, 503, *statuses)
    }


def _example(status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://errors.loan-auction.dev/{code}", "title": "…", "status": status,
        "code": code, "detail": code.replace("_", " "), "instance": "/v1/…",
    }
    if status == 422:
        body["errors"] = [{"field": "min_rate_bps", "message": "…"}]
    if code == "bid_not_competitive":
        body["marginal_rate_bps"] = 1800
    return body
