"""The bid fast lane: POST /v1/listings/{id}/bids without the router and FastAPI's per-request
machinery, which cost more than placing the bid (see BENCHMARKS.md).

The route stays registered with FastAPI, so the OpenAPI schema documents it and FastAPI could
serve it unchanged; the lane calls that same endpoint with the raw Request, and sends its errors
through the app's own exception handlers, so every answer is the one the framework would give.
"""

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send


class FastLane:
    def __init__(self, app: ASGIApp, route: APIRoute, handlers: Mapping[Any, Any]) -> None:
        self.app = app
        self.route = route
        self.methods = route.methods or set()
        self.handlers = handlers  # the app's exception handlers, read at call time

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] in self.methods:
            match = self.route.path_regex.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["route"], scope["path_params"] = self.route, match.groupdict()
        request = Request(scope, receive, send)
        try:
            response = await self.route.endpoint(request=request, **scope["path_params"])
        except Exception as error:
            handler = self._handler_for(error)
            if handler is None:
                raise
            response = await handler(request, error)
        await response(scope, receive, send)

    def _handler_for(self, error: Exception) -> Any:
        for kind in type(error).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None
