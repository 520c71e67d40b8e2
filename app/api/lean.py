"""A route class for the hot path: the endpoint gets the raw Request and its path params.

FastAPI still documents the route from its signature (so the OpenAPI schema stays true), but
requests skip dependency solving and body handling, which cost more than the bid itself. The
endpoint must parse and validate everything it reads (see `app.api.deps.parse_json`).
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute


class LeanRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            response: Response = await endpoint(request=request, **request.path_params)
            return response

        return handler
