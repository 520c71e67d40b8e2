"""Helpers for the HTTP tests: open listings, place bids, read problems, poll, ask Postgres."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from fastapi import FastAPI

from app import database
from tests.integration.conftest import ADMIN
from tests.waiting import eventually

PROBLEM_JSON = "application/problem+json"
Json = dict[str, Any]


def listing_body(**overrides: Any) -> Json:
    """A valid listing request; an override of None drops the field."""
    body: Json = {
        "borrower_id": "bob", "amount": 300_000, "term_months": 12, "max_rate_bps": 2000,
        "grade": "B", "duration_s": 60,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def open_listing(
    client: httpx.AsyncClient, headers: dict[str, str] = ADMIN, **overrides: Any
) -> Json:
    response = await client.post("/v1/listings", headers=headers, json=listing_body(**overrides))
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body: Json = response.json()
    return body


async def place_bid(
    client: httpx.AsyncClient,
    listing_id: str,
    amount: int,
    rate_bps: int,
    headers: dict[str, str] = ADMIN,
    lender_id: str | None = "lena",
) -> Json:
    path = f"/v1/listings/{listing_id}/bids"
    response = await client.post(path, headers=headers, json=bid_body(amount, rate_bps, lender_id))
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def bid_body(amount: int, rate_bps: int, lender_id: str | None = "lena") -> Json:
    body: Json = {"amount": amount, "min_rate_bps": rate_bps}
    if lender_id is not None:
        body["lender_id"] = lender_id
    return body


def problem(response: httpx.Response, status: int, code: str) -> Json:
    """Assert an RFC 9457 problem with this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: Json = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"].endswith(f"/{code}")
    assert body["title"] and body["detail"]
    assert body["instance"] == response.request.url.path
    return body


def error_fields(body: Json) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


async def get_json(client: httpx.AsyncClient, path: str, headers: dict[str, str] = ADMIN,
                   **params: Any) -> Json:
    response = await client.get(path, headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def wait_until_closed(
    client: httpx.AsyncClient, listing_id: str, database_url: str | None = None,
    seconds: float = 10.0,
) -> Json:
    """Poll the listing until its status leaves `open` (bounded); with `database_url`, also
    until Postgres has the resolution, so the rows can be read back right after."""
    deadline = time.monotonic() + seconds
    while True:
        listing = await get_json(client, f"/v1/listings/{listing_id}")
        stored = database_url is None or (await rows(
            database_url, "SELECT 1 FROM listings WHERE id = $1 AND status <> 'open'",
            UUID(listing_id),
        ))
        if listing["status"] != "open" and stored:
            return listing
        assert time.monotonic() < deadline, f"listing {listing_id} still open after {seconds} s"
        await asyncio.sleep(0.05)


async def rows(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Read straight from Postgres, on a connection of our own."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def writing_again(app: FastAPI) -> None:
    """Wait until a failed journal batch is behind: the writer has told the market (a task of
    its own) and the market has rebuilt its books."""
    market = app.state.services.market

    async def ready() -> bool:
        return not market.writer.recovering and bool(market.writable)

    await eventually(ready, what="the market writable again after the failed batch")


async def all_events(client: httpx.AsyncClient, page: int = 100, **params: Any) -> list[Json]:
    """The whole event log, walked `page` at a time with the `after` cursor."""
    found: list[Json] = []
    after = 0
    while True:
        body = await get_json(client, "/v1/events", after=after, limit=page, **params)
        found.extend(body["data"])
        if not body["data"]:
            return found
        after = body["next_after"]


#: The advisory lock the gated commits wait for.
GATE_KEY = 150_010


@dataclass
class Gate:
    """While open is False, a transaction that wrote to the gated table waits at COMMIT."""

    conn: "asyncpg.Connection[asyncpg.Record]"
    database: str

    async def held_commits(self) -> int:
        waiting: int = await self.conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
            " AND wait_event_type = 'Lock' AND wait_event = 'advisory'", self.database,
        )
        return waiting

    async def until_a_commit_is_held(self) -> None:
        async def held() -> bool:
            return await self.held_commits() > 0

        await eventually(held, 30, "a commit held at the gate", every=0.01)

    async def open(self) -> None:
        await self.conn.execute("SELECT pg_advisory_unlock($1)", GATE_KEY)


@asynccontextmanager
async def gated(database_url: str, table: str) -> AsyncIterator[Gate]:
    """Hold every commit that inserted into `table` until the gate opens (a test-only trigger,
    dropped afterwards)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"""
            CREATE OR REPLACE FUNCTION test_commit_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock({GATE_KEY}); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER test_commit_gate AFTER INSERT ON {table}
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_commit_gate();
        """)
        await conn.execute("SELECT pg_advisory_lock($1)", GATE_KEY)
        try:
            yield Gate(conn, await conn.fetchval("SELECT current_database()"))
        finally:
            await conn.execute("SELECT pg_advisory_unlock_all()")
            await conn.execute(f"DROP TRIGGER test_commit_gate ON {table}")
    finally:
        await conn.close()


@dataclass
class Embedded:
    """A test's own embedded Postgres, for tests that stop, pause or restart its processes
    (not the shared server's); `stop` also cleans up at the end (the handle of a restarted
    server is a new one, and only it can stop that server)."""

    data_dir: Path
    server: Any = None

    async def start(self) -> str:
        self.server = await asyncio.to_thread(database.start_embedded, self.data_dir)
        uri: str = self.server.get_uri()
        return uri

    async def stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.cleanup)
