"""Postgres stops, then hangs, under concurrent bidding: writes get 503 with Retry-After (or wait
and succeed), never another 5xx; the service heals; and afterwards what the API shows equals
what Postgres holds.

Eight bidders outbid each other on three books while a mover deposits into the savers' accounts
(who bid too). The first outage stops the server; the second pauses its processes with SIGSTOP,
so the writer's sessions and its fence stay open and the journal's batch times out instead of
failing at once. A short listing's deadline falls inside each outage. After both, every listing's
bids, allocations, status and loan, and every balance, read through the API, equal the naive
reference fed what Postgres holds: a service that took writes again without rebuilding its books
from Postgres shows bids, resolutions or money that Postgres never stored.
"""

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import psutil
import pytest

from app import database
from matching import MarketRules
from tests.e2e.drive import (
    balances_match,
    close_due,
    epoch,
    matches_reference,
    replay_journal,
    resolutions,
)
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import Embedded, Json, open_listing, wait_until_closed
from tests.money import assert_conserved

BIDDERS = 8
SAVERS = ("saver-1", "saver-2")
LENDERS = ("lena", "l1", "l2", "l3", "l4", "chen", "dora", "otto", *SAVERS)


@dataclass
class Load:
    """What the bidders and the mover saw; `open` holds the books still worth bidding on."""

    client: httpx.AsyncClient
    open: list[Json]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    bids: list[Json] = field(default_factory=list)  # every 201 body
    deposits: list[Json] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    async def post(self, path: str, body: Json) -> httpx.Response:
        headers = {**ADMIN, "Idempotency-Key": uuid4().hex}
        response = await self.client.post(path, headers=headers, json=body)
        self.statuses[response.status_code] += 1
        if response.status_code >= 400:
            self.codes[response.json()["code"]] += 1
        if response.status_code == 503:
            assert response.headers["Retry-After"]
            assert response.json()["code"] == "database_unavailable", response.text
        return response


async def _bidder(load: Load, rng: random.Random) -> None:
    while not load.stop.is_set():
        if not load.open:
            await asyncio.sleep(0.01)
            continue
        listing = rng.choice(load.open)
        response = await load.post(f"/v1/listings/{listing['id']}/bids", {
            "amount": rng.randrange(5_000, 60_001, 500),
            "min_rate_bps": rng.randrange(800, listing["max_rate_bps"] + 1, 5),
            "lender_id": rng.choice(LENDERS),
        })
        if response.status_code == 201:
            load.bids.append(response.json())
        elif response.status_code == 409 and response.json()["code"] == "listing_not_open":
            if listing in load.open:
                load.open.remove(listing)
        await asyncio.sleep(rng.uniform(0, 0.01))


async def _mover(load: Load, rng: random.Random) -> None:
    while not load.stop.is_set():
        account = rng.choice(SAVERS)
        response = await load.post(f"/v1/accounts/{account}/deposits", {
            "amount": rng.randrange(5_000, 50_001, 1_000), "reference": "outage drill",
        })
        if response.status_code == 201:
            load.deposits.append(response.json())
        await asyncio.sleep(rng.uniform(0.005, 0.02))


async def _until(what: str, predicate: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, f"{what}: not reached within {seconds} s"
        await asyncio.sleep(0.05)


@contextmanager
def paused(pgdata: Path) -> Iterator[None]:
    """The server hung: its postmaster and every backend stopped (SIGSTOP), then resumed."""
    postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    processes = [postmaster, *postmaster.children(recursive=True)]
    try:
        for process in processes:
            process.suspend()
        yield
    finally:
        for process in processes:
            process.resume()


@pytest.mark.slow
async def test_after_a_stopped_and_a_hung_postgres_the_api_shows_what_postgres_holds(
    tmp_path: Path,
) -> None:
    postgres = Embedded(tmp_path)
    uri = await postgres.start()
    rng = random.Random(15)
    try:
        async with running_service(
            uri, db_timeout_s=0.5, rate_limit_per_s=0, rate_limit_unauthenticated_per_s=0,
        ) as (_, client):
            client.headers.update(ADMIN)
            books = [
                await open_listing(client, amount=300_000, max_rate_bps=2000, duration_s=3600),
                await open_listing(client, amount=600_000, max_rate_bps=2400, duration_s=3600,
                                   pricing="uniform"),
                await open_listing(client, amount=1_000_000, max_rate_bps=2200, duration_s=3600,
                                   close_when_funded=True),
            ]
            load = Load(client, list(books))
            workers = [asyncio.create_task(_bidder(load, random.Random(rng.random())))
                       for _ in range(BIDDERS)]
            workers.append(asyncio.create_task(_mover(load, random.Random(rng.random()))))
            try:
                short = await _outages(load, client, postgres)
            finally:
                load.stop.set()
                await asyncio.gather(*workers)
            for listing in short:
                await wait_until_closed(client, listing["id"], uri)
            summary = await _api_shows_what_postgres_holds(client, uri, load, [*books, *short])
        assert set(load.statuses) <= {201, 409, 422, 503}, f"only these expected: {load.statuses}"
        print("outage drill:", summary, dict(load.statuses), dict(load.codes))
    finally:
        await postgres.stop()


async def _outages(load: Load, client: httpx.AsyncClient, postgres: Embedded) -> list[Json]:
    """A stopped server, then a hung one; each with a short listing whose deadline falls inside
    it. Returns the short listings."""
    short: list[Json] = []

    async def acked_more(than: int) -> bool:
        return load.statuses[201] > than

    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200

    await _until("bids before the outage", lambda: acked_more(40), 20)
    short.append(await _short_listing(load, client))
    await postgres.stop()
    refused = load.statuses[503]

    async def stopped_long_enough() -> bool:
        return (load.statuses[503] >= refused + 5
                and time.time() > epoch(short[-1]["closes_at"])
                and (await client.get("/readyz")).status_code == 503)

    await _until("503s while stopped", stopped_long_enough, 30)
    await postgres.start()
    healed_from = load.statuses[201]
    await _until("healed after the stop", lambda: _all(ready(), acked_more(healed_from + 20)), 60)

    short.append(await _short_listing(load, client))
    refused = load.statuses[503]
    with paused(database.embedded_pgdata(postgres.data_dir)):  # hung

        async def hung_long_enough() -> bool:
            return (load.statuses[503] >= refused + 5
                    and time.time() > epoch(short[-1]["closes_at"]))

        await _until("503s while hung", hung_long_enough, 30)
    healed_from = load.statuses[201]
    await _until("healed after the hang", lambda: _all(ready(), acked_more(healed_from + 20)), 60)
    return short


async def _short_listing(load: Load, client: httpx.AsyncClient) -> Json:
    listing = await open_listing(client, amount=300_000, max_rate_bps=2000, duration_s=2)
    load.open.append(listing)
    return listing


async def _all(*checks: Awaitable[bool]) -> bool:
    return all([await check for check in checks])


async def _api_shows_what_postgres_holds(
    client: httpx.AsyncClient, uri: str, load: Load, listings: list[Json]
) -> dict[str, int]:
    conn = await asyncpg.connect(uri)
    try:
        stored_bids = {str(r["id"]) for r in await conn.fetch("SELECT id FROM bids")}
        lost = [b["id"] for b in load.bids if b["id"] not in stored_bids]
        assert not lost, f"{len(lost)} acknowledged bids lost, e.g. {lost[:3]}"
        stored_moves = {r["id"] for r in await conn.fetch("SELECT id FROM ledger_entries")}
        assert all(d["entry"]["id"] in stored_moves for d in load.deposits), "a deposit lost"
        replay = await replay_journal(conn, MarketRules())
        resolved = resolutions(replay, close_due(replay, int(time.time() * 1e6)))
        for listing in listings:
            await matches_reference(client, conn, replay.engine, listing["id"], resolved)
        accounts = await balances_match(client, replay)
        await assert_conserved(conn)
    finally:
        await conn.close()
    outbid = sum(v.status == "outbid" for x in listings for v in replay.engine.bids(x["id"]) or [])
    assert outbid, "the drill is meant to outbid"
    return {"bids_acknowledged": len(load.bids), "bids_stored": len(stored_bids),
            "outbid": outbid, "deposits_acknowledged": len(load.deposits),
            "accounts_compared": accounts}
