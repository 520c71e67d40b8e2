"""The service on a real socket (uvicorn in the test's loop), and a server-sent-events reader.

Streams need a real server: httpx's ASGI transport returns a response only once the app has
finished it, and a slow reader is only slow through real TCP flow control.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from app.live.lifecycle import Server
from app.main import create_app
from app.settings import Settings
from tests.integration.conftest import ADMIN, ADMIN_KEY, FUNDED_LENDERS, SECRETS_KEY, fund
from tests.integration.receiver import until_started

Json = dict[str, Any]


@dataclass
class Running:
    app: FastAPI
    server: uvicorn.Server
    base_url: str
    client: httpx.AsyncClient  # keep-alive client for the REST calls, admin key by default


@contextlib.asynccontextmanager
async def serving(database_url: str, **overrides: Any) -> AsyncIterator[Running]:
    settings = Settings(
        database_url=database_url, admin_key=SecretStr(ADMIN_KEY), rate_limit_per_s=0,
        secrets_key=SecretStr(SECRETS_KEY), **overrides,
    )
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    server = Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until_started(server, task, 30)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=10) as client:
            await fund(client, *FUNDED_LENDERS)
            yield Running(app, server, base, client)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class Sse:
    """What one stream delivered: events in order, comments, and whether it ended."""

    events: list[Json] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    ended: bool = False

    @property
    def ids(self) -> list[int]:
        return [e["id"] for e in self.events]


async def read_stream(
    base_url: str,
    path: str,
    headers: dict[str, str],
    until: Callable[[Sse], bool] = lambda s: False,
    within_s: float = 5.0,
) -> Sse:
    """Read the stream until `until` holds or the server ends it, at most `within_s` seconds
    (then it fails), then disconnect."""
    seen = Sse()
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async with asyncio.timeout(within_s):
            buffer = ""
            async for text in response.aiter_text():
                buffer += text
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    _take(block, seen)
                if until(seen):
                    return seen
            seen.ended = True
    return seen


def _take(block: str, seen: Sse) -> None:
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        if line.startswith(":"):
            seen.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    if "retry" in fields:
        seen.retry = int(fields["retry"])
    if "data" in fields:
        seen.events.append({
            "id": int(fields["id"]), "event": fields["event"], "data": orjson.loads(fields["data"])
        })
