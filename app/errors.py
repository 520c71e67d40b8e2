"""The error hierarchy and its one mapping to RFC 9457 problem details."""

from typing import Any

from matching import Rejection
from matching.rejections import CONFLICT_CODES, NOT_FOUND_CODES

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """Anything the API answers with a 4xx, 500 or 503. `code` is stable and machine-readable."""

    status = 400
    title = "Bad request"

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}

    def problem(self, instance: str) -> dict[str, Any]:
        return {
            "type": f"https://errors.loan-auction.dev/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"


class Forbidden(ApiError):
    status, title = 403, "Forbidden"


class NotFound(ApiError):
    status, title = 404, "Not found"


class MethodNotAllowed(ApiError):
    status, title = 405, "Method not allowed"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class PayloadTooLarge(ApiError):
    status, title = 413, "Payload too large"


class Invalid(ApiError):
    status, title = 422, "Unprocessable content"


class RateLimited(ApiError):
    status, title = 429, "Too many requests"


class Internal(ApiError):
    """A bug: an exception nothing else handled (logged with its traceback)."""

    status, title = 500, "Internal server error"

    def __init__(self) -> None:
        super().__init__("internal_error", "an unexpected error; it has been logged")


class Unavailable(ApiError):
    status, title = 503, "Service unavailable"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(
            "database_unavailable", detail, headers={"Retry-After": str(retry_after_s)}
        )


def malformed_body() -> ApiError:
    return ApiError("malformed_body", "the body is not valid JSON")


class Standby(ApiError):
    """Not the writer now: another instance serves the API (a router retries it there)."""

    status, title = 503, "Service unavailable"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__("standby", detail, headers={"Retry-After": str(retry_after_s)})


def from_rejection(rejection: Rejection) -> ApiError:
    """Map an engine rejection to its HTTP error, keeping the engine's code."""
    extra: dict[str, Any] = {}
    if rejection.field is not None:
        extra["errors"] = [{"field": rejection.field, "message": rejection.detail}]
    if rejection.marginal_rate_bps is not None:
        extra["marginal_rate_bps"] = rejection.marginal_rate_bps
    if rejection.available is not None:
        extra["available"] = rejection.available
    if rejection.code in NOT_FOUND_CODES:
        return NotFound(rejection.code, rejection.detail)
    kind = Conflict if rejection.code in CONFLICT_CODES else Invalid
    return kind(rejection.code, rejection.detail, extra=extra)
