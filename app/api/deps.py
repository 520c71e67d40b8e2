"""What every route needs: the caller, the services, idempotency, and rendering a Reply."""

import email.message
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from app.accounts.service import Accounts
from app.api.guard import Requires, idempotent
from app.api.schemas import Problem
from app.auth import Principal
from app.errors import PROBLEM_JSON, ApiError, Invalid, malformed_body
from app.idempotency import Idempotency, IdempotentRequest, Reply
from app.keys.service import Keys
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
    idempotency: Idempotency
    accounts: Accounts
    policy: dict[str, Any]  # GET /v1/policy, fixed for the life of the process
    standing_orders: StandingOrders


async def services(request: Request) -> Services:
    """Async on purpose: FastAPI runs a plain `def` dependency in a worker thread."""
    found: Services = request.app.state.services
    return found


def field_errors(errors: Sequence[Any], skip: int) -> list[dict[str, str]]:
    """Pydantic errors as `{field, message}`; `skip` drops leading loc parts like "body"."""
    return [{"field": _field(e["loc"], skip), "message": e["msg"]} for e in errors]


def _field(loc: Sequence[Any], skip: int) -> str:
    if not loc:  # the body as a whole, e.g. JSON that is not an object
        return "body"
    return ".".join(str(p) for p in loc[skip:]) or str(loc[0])


def parse_body(model: type[M], content_type: str | None, body: bytes) -> M:
    """Validate a JSON body straight through pydantic-core, without FastAPI's machinery, giving
    the answers FastAPI gives for a body parameter: an empty body is 422 `body` "Field
    required", a content type that is not JSON is 422 `body`, bytes that are not JSON are 400."""
    if not body:
        raise _invalid([{"field": "body", "message": "Field required"}])
    if not is_json(content_type):
        raise _invalid_as_fastapi(model, body)
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            raise malformed_body() from None
    try:
        decoded = json.loads(body)  # as FastAPI decodes; it refuses e.g. ints over 4,300 digits
    except ValueError:
        raise malformed_body() from None
    raise _invalid_as_fastapi(model, decoded)


def is_json(content_type: str | None) -> bool:
    """FastAPI's rule (strict content type): `application/json` or `application/*+json`; a
    request without a Content-Type is not read as JSON."""
    if content_type == "application/json":
        return True
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _invalid_as_fastapi(model: type[BaseModel], value: object) -> ApiError:
    """FastAPI validates the decoded body in Python mode, whose messages differ from JSON
    mode's (e.g. for a body that is not an object); ask pydantic the same way."""
    try:
        model.model_validate(value, from_attributes=True)
    except ValidationError as error:
        return _invalid(field_errors(error.errors(), 0))
    return _invalid([{"field": "body", "message": "Input should be a JSON object"}])


def _invalid(errors: list[dict[str, str]]) -> ApiError:
    return Invalid("validation_error", "the request is invalid", extra={"errors": errors})


#: The caller, by the roles a route admits (see `app.api.guard`).
AnyKey = Annotated[Principal, Depends(Requires("admin", "borrower", "lender"))]
Admin = Annotated[Principal, Depends(Requires("admin"))]
Borrower = Annotated[Principal, Depends(Requires("borrower", "admin"))]
Lender = Annotated[Principal, Depends(Requires("lender", "admin"))]
Svc = Annotated[Services, Depends(services)]
Idem = Annotated[IdempotentRequest | None, Depends(idempotent)]


def acting_for(who: Principal, named: str | None, field: str) -> str:
    """Whom a write is for: the subject the body names, else the caller's own; an admin acts
    for no one of its own, so it must name one (422 on `field`)."""
    if named:
        return named
    if who.role == "admin":
        raise Invalid("validation_error", f"an admin must name the {field}",
                      extra={"errors": [{"field": field, "message": "required for admin"}]})
    return who.subject


def render_json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def json_reply(status: int, body: object) -> Reply:
    return Reply(status, orjson.dumps(body))


def shown_once(status: int, body: dict[str, Any], secret: str) -> Reply:
    """A reply carrying a secret that is shown once: a replay shows the rest, `secret` null."""
    return Reply(status, orjson.dumps(body), stored=orjson.dumps({**body, secret: None}))


def render(reply: Reply) -> Response:
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    media_type = PROBLEM_JSON if reply.status >= 400 else "application/json"
    return Response(reply.body, reply.status, headers=headers, media_type=media_type)


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
        "api_key_not_found",
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
        "subject_reserved",
        "expiry_out_of_range",
        "unknown_grade",
        "term_range_inverted",
        "budget_below_amount_per_listing",
    ),
    429: ("rate_limited",),
    503: ("database_unavailable", "standby"),
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
