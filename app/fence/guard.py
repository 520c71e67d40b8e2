"""ASGI guard: while this instance is not the writer, every /v1 request gets a 503 problem.

Reads too: a standby serves no API at all, so caches (API keys, the books) only ever live on
the writer, and a router retries the request on the other instance. /healthz, /readyz and
/metrics stay up.
"""

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import PROBLEM_JSON, Standby, Unavailable
from app.fence.role import Role


class StandbyGuard:
    def __init__(self, app: ASGIApp, role: Role) -> None:
        self.app = app
        self.role = role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if self.role.writer or scope["type"] != "http" or not _is_api(path):
            await self.app(scope, receive, send)
            return
        await refuse(self.role, path, send)


async def refuse(role: Role, path: str, send: Send) -> None:
    """The 503 problem a non-writer answers to an API request."""
    error = (
        Standby("this instance is a standby; the writer serves the API")
        if role.code == "standby"
        else Unavailable("this instance is rebuilding its books or reaching postgres; retry")
    )
    body = orjson.dumps(error.problem(path))
    await send({
        "type": "http.response.start", "status": error.status,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
        ],
    })
    await send({"type": "http.response.body", "body": body})


def _is_api(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")
