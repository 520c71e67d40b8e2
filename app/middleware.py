"""ASGI middleware: request ids, the body-size limit, per-route metrics, one access log line.

`Edge` holds what every request gets at the edge; `EdgeMiddleware` applies it to every route,
and the bid fast lane (`app.api.lean`) applies the same `Edge` to the one route it serves."""

import contextvars
import logging
import time
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_JSON, PayloadTooLarge
from app.ids import random_hex
from app.metrics import Metrics

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access = logging.getLogger("app.access")


class TooLarge(HTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it rather than answering 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is over {limit} bytes")


class Edge:
    """Tags each request with an id, caps the body at `max_body` bytes (413), counts it, and
    logs one access line for it (unless `access_log` is off, as in benchmarks)."""

    def __init__(self, max_body: int, metrics: Metrics, access_log: bool = True) -> None:
        self.max_body = max_body
        self.metrics = metrics
        self.access_log = access_log
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request_id(self, given: str | None) -> str:
        """The caller's X-Request-ID, or a new one; set for this request's log lines."""
        rid = given or random_hex(24)
        request_id.set(rid)
        return rid

    def declared_too_large(self, declared: str | None) -> bool:
        return declared is not None and (not declared.isdigit() or int(declared) > self.max_body)

    def observe(self, method: str, path: str, status: int, started: float) -> None:
        """Label lookups are cached: `labels()` costs microseconds on every request."""
        slot = (method, path, status)
        children = self._children.get(slot)
        if children is None:
            children = self._children[slot] = (
                self.metrics.http_requests.labels(method, path, str(status)),
                self.metrics.http_latency.labels(method, path),
            )
        seconds = time.perf_counter() - started
        children[0].inc()
        children[1].observe(seconds)
        if self.access_log:
            access.info("request", extra={
                "method": method, "route": path, "status": status,
                "duration_ms": round(seconds * 1000, 3),
            })


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, edge: Edge) -> None:
        self.app = app
        self.edge = edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        edge = self.edge
        rid = edge.request_id(_header(scope, b"x-request-id"))
        started = time.perf_counter()
        status = 500
        if edge.declared_too_large(_header(scope, b"content-length")):
            await too_large(scope, send, edge.max_body, rid)
            self._observe(scope, 413, started)
            return
        seen = 0
        sent_start = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > edge.max_body:
                    raise TooLarge(edge.max_body)
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status, sent_start
            if message["type"] == "http.response.start":
                status, sent_start = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, tagged_send)
        except TooLarge:
            if sent_start:
                raise
            status = 413
            await too_large(scope, send, edge.max_body, rid)
        finally:
            self._observe(scope, status, started)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        path = getattr(scope.get("route"), "path", "unmatched")
        self.edge.observe(scope["method"], path, status, started)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def too_large(scope: Scope, send: Send, limit: int, rid: str) -> None:
    error = PayloadTooLarge("payload_too_large", f"the body is over {limit} bytes")
    body: dict[str, Any] = error.problem(scope["path"])
    await send({
        "type": "http.response.start", "status": 413,
        "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"x-request-id", rid.encode())],
    })
    await send({"type": "http.response.body", "body": orjson.dumps(body)})
