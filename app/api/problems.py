"""Errors map to HTTP in this one place, as RFC 9457 problem details with a stable `code`."""

import logging

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.api.deps import field_errors
from app.errors import (
    PROBLEM_JSON,
    ApiError,
    Internal,
    Invalid,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    malformed_body,
)

log = logging.getLogger(__name__)

_HTTP_CODES = {
    404: (NotFound, "not_found"),
    405: (MethodNotAllowed, "method_not_allowed"),
    413: (PayloadTooLarge, "payload_too_large"),  # a streamed body over the limit (middleware)
}
_DATABASE_DOWN = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
    # A pooled connection whose query timed out on a hung server can fail its next query
    # with this (MagicStack/asyncpg#1069): the database is not answering, not a bug of ours.
    asyncpg.InternalClientError,
)


def problem_response(error: ApiError, request: Request) -> Response:
    body = orjson.dumps(error.problem(request.url.path))
    return Response(body, error.status, headers=error.headers, media_type=PROBLEM_JSON)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return problem_response(error, request)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, error: RequestValidationError) -> Response:
        if any(e["type"] == "json_invalid" for e in error.errors()):  # as parse_body does
            return problem_response(malformed_body(), request)
        fields = field_errors(error.errors(), 1)
        return problem_response(
            Invalid("validation_error", "the request is invalid", extra={"errors": fields}), request
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 400:  # FastAPI could not decode the body (e.g. not UTF-8)
            return problem_response(malformed_body(), request)
        kind, code = _HTTP_CODES.get(error.status_code, (ApiError, "bad_request"))
        headers = dict(error.headers or {})
        if error.status_code == 405:  # starlette names only the first route's methods
            headers["Allow"] = ", ".join(_allowed_methods(request))
        mapped = kind(code, str(error.detail), headers=headers)
        if kind is ApiError:
            mapped.status = error.status_code
        return problem_response(mapped, request)

    async def database_down(request: Request, error: Exception) -> Response:
        log.warning("database unavailable", extra={"error": repr(error)})
        return problem_response(Unavailable("the database is unavailable; retry"), request)

    for kind in _DATABASE_DOWN:
        app.add_exception_handler(kind, database_down)

    @app.exception_handler(asyncpg.DataError)
    async def refused_by_postgres(request: Request, error: asyncpg.DataError) -> Response:
        """Last line of defence: a value the edge let through but Postgres cannot hold."""
        log.warning("postgres refused a value", extra={"error": repr(error)})
        return problem_response(Invalid("validation_error", "a value cannot be stored"), request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error", exc_info=error)
        return problem_response(Internal(), request)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (FastAPI makes one route per method)."""
    routes = request.app.router.routes
    return [
        method for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
