"""What every route needs: the caller, the services, idempotency, and rendering a Reply."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.accounts.service import Accounts
from app.api.schemas import Problem
from app.auth import Keys, Principal
from app.errors import ApiError, Invalid
from app.idempotency import IdempotentRequest, Reply
from app.market import Market
from app.queries import Queries
from app.ratelimit import RateLimiter
from app.standing_orders.service import StandingOrders
from app.webhooks.service import Webhooks

M = TypeVar("M", bound=BaseModel)


@dataclass(slots=True)
class Services:
    market: Market
    queries: Queries
    keys: Keys
    limiter: RateLimiter
    webhooks: Webhooks
    accounts: Accounts
    policy: dict[str, Any]  # GET /v1/policy, fixed for the life of the process
    standing_orders: StandingOrders


async def services(request: Request) -> Services:
    """Async on purpose: FastAPI runs a plain `def` dependency in a worker thread."""
    found: Services = request.app.state.services
    return found


async def authenticate(request: Request, authorization: str | None) -> Principal:
    svc: Services = request.app.state.services
    who = await svc.keys.authenticate(authorization)
    svc.limiter.check(f"{who.role}:{who.subject}")
    return who


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
) -> Principal:
    return await authenticate(request, authorization)


async def idempotent(
    request: Request,
    idempotency_key: Annotated[
        str | None, Header(max_length=255, description="Retry-safe key; stored at least 24 h")
    ] = None,
) -> IdempotentRequest | None:
    return idempotent_request(
        request, request.state.principal, idempotency_key, await request.body()
    )


def idempotent_request(
    request: Request, who: Principal, key: str | None, body: bytes
) -> IdempotentRequest | None:
    if key is None:
        return None
    if not key.strip() or len(key) > 255:
        raise Invalid(
            "validation_error",
            "Idempotency-Key must be 1 to 255 characters",
            extra={"errors": [{"field": "Idempotency-Key", "message": "bad length"}]},
        )
    return IdempotentRequest.of(
        f"{who.role}:{who.subject}", key, request.method, request.url.path, body
    )


def field_errors(errors: Sequence[Any], skip: int) -> list[dict[str, str]]:
    """Pydantic errors as `{field, message}`; `skip` drops leading loc parts like "body"."""
    return [{"field": _field(e["loc"], skip), "message": e["msg"]} for e in errors]


def _field(loc: Sequence[Any], skip: int) -> str:
    if not loc:  # the body as a whole, e.g. JSON that is not an object
        return "body"
    return ".".join(str(p) for p in loc[skip:]) or str(loc[0])


def parse_json(model: type[M], body: bytes) -> M:
    """Validate a JSON body straight through pydantic-core, without FastAPI's machinery."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        errors = error.errors()
        if any(e["type"] == "json_invalid" for e in errors):
            malformed = ApiError("malformed_body", "the body is not valid JSON")
            raise malformed from None
        raise Invalid(
            "validation_error", "the request is invalid", extra={"errors": field_errors(errors, 0)}
        ) from None


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
    404: (
        "listing_not_found",
        "bid_not_found",
        "loan_not_found",
        "event_not_found",
        "webhook_endpoint_not_found",
        "account_not_found",
        "standing_order_not_found",
        "not_found",
    ),
    409: (
        "listing_not_open",
        "bid_not_competitive",
        "below_min_funding",
        "insufficient_funds",
        "lender_share_exceeded",
        "borrower_limit_exceeded",
        "standing_order_exists",
    ),
    413: ("payload_too_large",),
    422: (
        "validation_error",
        "idempotency_key_reused",
        "rate_above_max",
        "rate_out_of_range",
        "bid_below_minimum",
        "bid_above_listing_amount",
        "amount_out_of_range",
        "term_out_of_range",
        "window_out_of_range",
        "min_funding_out_of_range",
        "invalid_cursor",
        "rate_below_grade_floor",
        "account_not_allowed",
        "unknown_grade",
        "term_range_inverted",
        "budget_below_amount_per_listing",
    ),
    429: ("rate_limited",),
    503: ("database_unavailable",),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries, with an example per code, for the problem responses a route can give."""
    return {
        status: {
            "model": Problem,
            "content": {
                "application/problem+json": {
                    "examples": {
                        code: {"value": _example(status, code)} for code in PROBLEM_CODES[status]
                    }
                }
            },
        }
        for status in (401, 403, 429, 503, *statuses)
    }


def _example(status: int, code: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://errors.loan-auction.dev/{code}",
        "title": "…",
        "status": status,
        "code": code,
        "detail": code.replace("_", " "),
        "instance": "/v1/…",
    }
    if status == 422:
        body["errors"] = [{"field": "min_rate_bps", "message": "…"}]
    if code == "bid_not_competitive":
        body["marginal_rate_bps"] = 1800
    if code == "insufficient_funds":
        body["available"] = 25_000
    return body
