"""Postgres stops under load: writes get 503 with Retry-After, never another 5xx; it heals."""

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app import database
from tests.integration.conftest import ADMIN, running_service


async def _bid_forever(client: httpx.AsyncClient, listing_id: str, seen: Counter[int],
                       acknowledged: list[str], stop: asyncio.Event) -> None:
    rate = 3000
    while not stop.is_set():
        response = await client.post(f"/v1/listings/{listing_id}/bids", headers=ADMIN, json={
            "amount": 5_000, "min_rate_bps": rate, "lender_id": "lena",
        })
        seen[response.status_code] += 1
        if response.status_code == 201:
            acknowledged.append(response.json()["id"])
        if response.status_code == 503:
            assert "Retry-After" in response.headers
            assert response.json()["code"] == "database_unavailable"
        await asyncio.sleep(0.01)


async def _until(predicate: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_an_outage_gives_503s_then_heals_without_losing_acknowledged_bids(
    tmp_path: Path,
) -> None:
    server = await asyncio.to_thread(database.start_embedded, tmp_path)
    uri = server.get_uri()
    seen: Counter[int] = Counter()
    acknowledged: list[str] = []
    stop = asyncio.Event()
    try:
        async with running_service(uri, db_timeout_s=1.0) as (_, client):
            listing = await client.post(
                "/v1/listings",
                headers=ADMIN,
                json={
                    "borrower_id": "bob",
                    "amount": 1_000_000_000,
                    "term_months": 12,
                    "max_rate_bps": 3000,
                    "grade": "A",
                    "duration_s": 3600,
                },
            )
            assert listing.status_code == 201
            load = asyncio.create_task(
                _bid_forever(client, listing.json()["id"], seen, acknowledged, stop)
            )
            await _until(lambda: _true(seen[201] >= 20), 10)
            await asyncio.to_thread(server.cleanup)  # stop postgres under load

            async def unavailable() -> bool:
                return seen[503] >= 5 and (await client.get("/readyz")).status_code == 503

            await _until(unavailable, 30)
            server = await asyncio.to_thread(database.start_embedded, tmp_path)
            before = seen[201]

            async def healed() -> bool:
                ready = (await client.get("/readyz")).status_code == 200
                return ready and seen[201] > before + 10

            await _until(healed, 60)
            stop.set()
            await load
        assert set(seen) <= {201, 503}, f"only 201 and 503 expected, saw {dict(seen)}"
        conn = await asyncpg.connect(uri)
        try:
            stored = {str(r["id"]) for r in await conn.fetch("SELECT id FROM bids")}
        finally:
            await conn.close()
        assert set(acknowledged) <= stored, "every acknowledged bid survived the outage"
    finally:
        stop.set()
        await asyncio.to_thread(server.cleanup)


async def _true(value: bool) -> bool:
    return value
