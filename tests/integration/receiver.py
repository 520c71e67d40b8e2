"""A real webhook receiver on 127.0.0.1: verifies every signature, can fail or hang on cue."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from standardwebhooks import Webhook
from starlette.types import Receive, Scope, Send

from tests.waiting import eventually


@dataclass
class Receiver:
    """Answers `fail_first` attempts of each message with 500, hangs when `hang` is set, holds
    every answer until `gate` is set when there is one; counts requests in flight."""

    secret: str = ""
    fail_first: int = 0
    hang: bool = False
    status: int = 204
    attempts: dict[str, int] = field(default_factory=dict)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""
    gate: asyncio.Event | None = None
    in_flight: int = 0
    most_in_flight: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hang:
                message_id = headers["webhook-id"]
                self.attempts[message_id] = self.attempts.get(message_id, 0) + 1
                await asyncio.sleep(3600)
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.in_flight -= 1
        status = self._answer(body, headers)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def until_delivered(self, count: int) -> None:
        """Wait (bounded) until exactly `count` messages were delivered."""

        async def arrived() -> bool:
            return len(self.delivered) == count

        await eventually(arrived, what=f"{count} deliveries")

    def _answer(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except Exception:
            self.bad_signatures += 1
            return 400
        message_id = headers["webhook-id"]
        seen = self.attempts[message_id] = self.attempts.get(message_id, 0) + 1
        if seen <= self.fail_first:
            return 500
        if 200 <= self.status < 300:
            self.delivered.append(orjson.loads(body) if payload is not None else {})
        return self.status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until_started(server: uvicorn.Server, task: "asyncio.Task[None]", seconds: float) -> None:
    """Wait (bounded) until `server`, serving in `task`, listens; if it stopped, raise why."""

    async def started() -> bool:
        if task.done():
            task.result()
            raise AssertionError("the server stopped before it listened")
        return server.started

    await eventually(started, seconds, "the server listening", every=0.01)


@asynccontextmanager
async def serving(receiver: Receiver, port: int | None = None) -> AsyncIterator[Receiver]:
    port = port or free_port()
    config = uvicorn.Config(
        receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until_started(server, task, 10)
        receiver.url = f"http://127.0.0.1:{port}/hooks"
        yield receiver
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 5)
