"""What a route requires before it runs: a role, checked before the body is read, and on a POST
an Idempotency-Key parameter.

Roles are declared per route (`who: Admin`, or `dependencies=[Depends(Requires("admin"))]`)
and read back from the route table with `route_roles`, so tests and docs can list who may call
what. `Requires` is an HTTP bearer security scheme, so OpenAPI shows each such route as needing
an API key (the Authorize button on /docs).
"""

from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPBearer

from app.auth import Principal, Role
from app.errors import Invalid
from app.idempotency import IdempotentRequest

if TYPE_CHECKING:
    from app.api.deps import Services

SCHEME = "ApiKey"


async def authenticate(request: Request, authorization: str | None) -> Principal:
    """The caller behind a bearer key, counted against its rate limit."""
    return await caller(request.app.state.services, authorization, request.scope.get("client"))


async def caller(
    svc: "Services", authorization: str | None, client: tuple[str, int] | None
) -> Principal:
    who: Principal = await svc.keys.authenticate(authorization, client)
    svc.limiter.check(who.key_id)
    return who


class Requires(HTTPBearer):
    """A route's caller must hold a key of one of `roles` (401 without a valid key, 403 with
    another role). `GuardedRoute` runs `check` before FastAPI reads the body; as a dependency it
    then hands the route the principal already found."""

    def __init__(self, *roles: Role) -> None:
        super().__init__(
            scheme_name=SCHEME, auto_error=False,
            description="An API key, sent as `Authorization: Bearer <key>`.",
        )
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        who: Principal | None = getattr(request.state, "principal", None)
        return who if who is not None else await self.check(request)

    async def check(self, request: Request) -> Principal:
        who = await authenticate(request, request.headers.get("authorization"))
        who.require(*self.roles)
        request.state.principal = who
        return who


def requirement(route: APIRoute) -> Requires | None:
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, Requires):
            return dependency.call
    return None


def route_roles(route: APIRoute) -> tuple[Role, ...] | None:
    """The roles that may call `route`; None for a route open to anyone (health, docs)."""
    found = requirement(route)
    return None if found is None else found.roles


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every API route the app serves, as declared (included routers flattened)."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield route


def declares(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call for d in dependant.dependencies)


async def idempotent(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retry-safe key, 1 to 255 characters; stored at least 24 h",
               json_schema_extra={"maxLength": 255}),
    ] = None,
) -> IdempotentRequest | None:
    """The length is checked here, not by `Header(max_length=)`, so that the bid fast lane, which
    calls this directly, gives the same answer."""
    if idempotency_key is None:
        return None
    check_idempotency_key(idempotency_key)
    return idempotent_request(
        request.state.principal, idempotency_key, request.method, request.url.path,
        await request.body(),
    )


def check_idempotency_key(key: str) -> None:
    if not key.strip() or len(key) > 255:
        raise Invalid(
            "validation_error",
            "Idempotency-Key must be 1 to 255 characters",
            extra={"errors": [{"field": "Idempotency-Key", "message": "bad length"}]},
        )


def idempotent_request(
    who: Principal, key: str, method: str, path: str, body: bytes
) -> IdempotentRequest:
    return IdempotentRequest.of(f"{who.role}:{who.subject}", key, method, path, body)


class GuardedRoute(APIRoute):
    """An APIRoute whose `Requires` runs before FastAPI reads and validates the body, so a caller
    who may not do the thing gets 401/403 whatever the body says. A POST route must declare
    the Idempotency-Key dependency, so no new write can forget it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if "POST" in (self.methods or ()) and not declares(self.dependant, idempotent):
            raise TypeError(f"POST {path} must take an Idempotency-Key (an `Idem` parameter)")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guard = requirement(self)
        if guard is None:
            return handler

        async def guarded(request: Request) -> Response:
            await guard.check(request)
            return await handler(request)

        return guarded
