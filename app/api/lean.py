"""The bid fast lane: POST /v1/listings/{id}/bids served as a plain ASGI handler at the top of
the app's middleware stack, below none of Starlette's Request/Response machinery, which cost
more than placing the bid (see BENCHMARKS.md). Every other request goes down the stack.

The route stays registered with FastAPI, so the OpenAPI schema documents it and FastAPI serves
it unchanged when the lane is off (`LOAN_AUCTION_BID_FAST_LANE=false`). The lane does what the
stack does for that route, in the same order and with the same code: the edge (`Edge`: request
id, body limit, metrics, access line), the standby guard (`refuse`), the route's `Requires`
(`caller`, then the roles), the Idempotency-Key (`check_idempotency_key`,
`idempotent_request`), then the endpoint's own body (`bid_reply`); any error goes through the
app's own exception handlers, so every answer is the one the framework would give. It refuses,
when the app is built, a route that declares anything else: that would be skipped silently.
"""

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from re import Pattern
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.datastructures import URL, State
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.guard import (
    Requires,
    caller,
    check_idempotency_key,
    idempotent,
    idempotent_request,
)
from app.auth import Principal
from app.errors import PROBLEM_JSON
from app.fence.guard import refuse
from app.fence.role import Role
from app.idempotency import IdempotentRequest, Reply
from app.middleware import Edge, TooLarge, too_large

#: What the lane calls once the caller and the Idempotency-Key are known (`bids.bid_reply`).
Handler = Callable[
    [Any, Principal, str, "str | None", bytes, "IdempotentRequest | None"], Awaitable[Reply]
]
_JSON = b"application/json"
_PROBLEM = PROBLEM_JSON.encode()
_REPLAYED = (b"idempotent-replayed", b"true")
_WANTED = frozenset(
    (b"x-request-id", b"content-length", b"content-type", b"authorization", b"idempotency-key")
)


@dataclass(frozen=True, slots=True)
class LanePlan:
    """How the lane calls a route's endpoint: which parameter gets what."""

    route: APIRoute
    path_regex: Pattern[str]
    guard: Requires
    request: str
    who: str | None
    idem: str | None
    path_param: str

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
        skipped += [f.name for f in d.path_params[1:]]  # one path parameter, passed on
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
        if skipped or guard is None or d.request_param_name is None or not d.path_params:
            raise TypeError(
                f"the fast lane cannot serve {route.path}: it needs a Requires dependency and a "
                f"Request parameter, and would skip {skipped}"
            )
        return cls(route, path_regex or route.path_regex, guard, d.request_param_name, who, idem,
                   d.path_params[0].name)


class FastLane:
    """Wraps the app's middleware stack (`install`): the bid route here, the rest below."""

    def __init__(
        self, app: ASGIApp, plan: LanePlan, handlers: Mapping[Any, Any], state: State,
        role: Role, edge: Edge, handler: Handler,
    ) -> None:
        self.app = app
        self.plan = plan
        self.route = plan.route
        self.methods = frozenset(plan.route.methods or ())
        self.handlers = handlers  # the app's exception handlers, read at call time
        self.state = state
        self.role = role
        self.edge = edge
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] in self.methods:
            match = self.plan.path_regex.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["route"], scope["path_params"] = self.route, match.groupdict()
        started = time.perf_counter()
        found = {}
        for key, value in scope["headers"]:
            if key in _WANTED and key not in found:
                found[key] = value.decode("latin-1")
        rid = self.edge.request_id(found.get(b"x-request-id"))
        status = 500
        try:
            status = await self._serve(scope, receive, send, found, rid)
        finally:
            self.edge.observe(scope["method"], self.route.path, status, started)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, found: dict[bytes, str], rid: str
    ) -> int:
        tag = (b"x-request-id", rid.encode())
        if self.edge.declared_too_large(found.get(b"content-length")):
            await too_large(scope, send, self.edge.max_body, rid)
            return 413
        if not self.role.writer:
            return await _tagged(send, tag, lambda tagged: refuse(self.role, scope["path"], tagged))
        try:
            reply = await self._reply(scope, receive, found)
        except Exception as error:
            handler = self._handler_for(error)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), error)
            return await _tagged(send, tag, lambda tagged: response(scope, receive, tagged))
        headers = [
            (b"content-length", str(len(reply.body)).encode()),
            (b"content-type", _PROBLEM if reply.status >= 400 else _JSON),
            tag,
        ]
        if reply.replayed:
            headers.insert(0, _REPLAYED)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})
        return reply.status

    async def _reply(self, scope: Scope, receive: Receive, found: dict[bytes, str]) -> Reply:
        """As the route: its `Requires` before the body, the Idempotency-Key, the endpoint."""
        svc = self.state.services
        who = await caller(svc, found.get(b"authorization"), scope.get("client"))
        who.require(*self.plan.guard.roles)
        key = found.get(b"idempotency-key")
        idem = None
        if key is not None:
            check_idempotency_key(key)
            body = await self._body(receive)
            idem = idempotent_request(who, key, scope["method"], URL(scope=scope).path, body)
        else:
            body = await self._body(receive)
        return await self.handler(
            svc, who, scope["path_params"][self.plan.path_param], found.get(b"content-type"),
            body, idem,
        )

    async def _body(self, receive: Receive) -> bytes:
        """As Starlette's `Request.body`, capped at the edge's limit as `EdgeMiddleware` caps."""
        chunks: list[bytes] = []
        seen, limit = 0, self.edge.max_body
        while True:
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > limit:
                    raise TooLarge(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()

    def _handler_for(self, error: Exception) -> Any:
        for kind in type(error).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None


def install(app: FastAPI, path: str, edge: Edge, handler: Handler) -> None:
    """Put the lane on top of the app's middleware stack (built at the first request), so the
    bid route skips every layer; refuses here, not at the first request, a route it would
    serve wrongly."""
    plan = LanePlan.for_app(app, "POST", path)
    build = app.build_middleware_stack

    def build_with_lane() -> ASGIApp:
        return FastLane(
            build(), plan, app.exception_handlers, app.state, app.state.role, edge, handler
        )

    app.build_middleware_stack = build_with_lane  # type: ignore[method-assign]


async def _tagged(
    send: Send, tag: tuple[bytes, bytes], answer: Callable[[Send], Awaitable[None]]
) -> int:
    """Run `answer` with a send that adds the request id, as `EdgeMiddleware` does; the status."""
    status = 500

    async def tagged(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            message["headers"] = [*message.get("headers", []), tag]
        await send(message)

    await answer(tagged)
    return status

