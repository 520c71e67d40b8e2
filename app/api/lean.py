"""The bid fast lane: POST /v1/listings/{id}/bids without the router and FastAPI's per-request
machinery, which cost more than placing the bid (see BENCHMARKS.md).

The route stays registered with FastAPI, so the OpenAPI schema documents it and FastAPI serves
it unchanged when the lane is off (`LOAN_AUCTION_BID_FAST_LANE=false`); the lane calls that same
endpoint with the raw Request, supplying the two dependencies it knows (the route's `Requires`
and the Idempotency-Key) exactly as they would run, and sends its errors through the app's own
exception handlers, so every answer is the one the framework would give. It refuses, when the
app is built, a route that declares anything else: that would be skipped silently.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from re import Pattern
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.guard import Requires, idempotent


@dataclass(frozen=True, slots=True)
class LanePlan:
    """How the lane calls a route's endpoint: which parameter gets what."""

    route: APIRoute
    path_regex: Pattern[str]
    guard: Requires
    request: str
    who: str | None
    idem: str | None

    @classmethod
    def for_app(cls, app: FastAPI, method: str, path: str) -> "LanePlan":
        """The plan for a route as the app serves it, with router- and app-level dependencies."""
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if (isinstance(route, APIRoute) and context.path == path
                    and method in (context.methods or ())):
                return cls.of(route, context.dependant, context.path_regex)
        raise LookupError(f"{method} {path} is not routed")

    @classmethod
    def of(
        cls, route: APIRoute, dependant: Dependant | None = None,
        path_regex: Pattern[str] | None = None,
    ) -> "LanePlan":
        d = dependant or route.dependant
        skipped = [f.name for f in (*d.query_params, *d.header_params, *d.cookie_params,
                                    *d.body_params)]
        skipped += [f.name for f in d.path_params  # the lane passes the matched text unchecked
                    if f.field_info.annotation is not str or f.field_info.metadata]
        skipped += [name for name in (d.response_param_name, d.background_tasks_param_name,
                                      d.http_connection_param_name, d.security_scopes_param_name)
                    if name]
        guard: Requires | None = None
        who = idem = None
        for dependency in d.dependencies:
            if isinstance(dependency.call, Requires) and guard is None:
                guard, who = dependency.call, dependency.name
            elif dependency.call is idempotent and dependency.name and idem is None:
                idem = dependency.name
            else:
                skipped.append(dependency.name or repr(dependency.call))
        if skipped or guard is None or d.request_param_name is None:
            raise TypeError(
                f"the fast lane cannot serve {route.path}: it needs a Requires dependency and a "
                f"Request parameter, and would skip {skipped}"
            )
        return cls(route, path_regex or route.path_regex, guard, d.request_param_name, who, idem)


class FastLane:
    def __init__(self, app: ASGIApp, plan: LanePlan, handlers: Mapping[Any, Any]) -> None:
        self.app = app
        self.plan = plan
        self.route = plan.route
        self.methods = plan.route.methods or set()
        self.handlers = handlers  # the app's exception handlers, read at call time

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] in self.methods:
            match = self.plan.path_regex.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["route"], scope["path_params"] = self.route, match.groupdict()
        request = Request(scope, receive, send)
        try:
            response = await self.route.endpoint(**await self._arguments(request))
        except Exception as error:
            handler = self._handler_for(error)
            if handler is None:
                raise
            response = await handler(request, error)
        await response(scope, receive, send)

    async def _arguments(self, request: Request) -> dict[str, Any]:
        plan = self.plan
        who = await plan.guard.check(request)
        found: dict[str, Any] = {**request.path_params, plan.request: request}
        if plan.who is not None:
            found[plan.who] = who
        if plan.idem is not None:
            found[plan.idem] = await idempotent(request, request.headers.get("idempotency-key"))
        return found

    def _handler_for(self, error: Exception) -> Any:
        for kind in type(error).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None
