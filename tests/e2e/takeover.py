"""The takeover drill's parts: a bid burst through the router while the writer is killed, and
the check that the new writer's books are what Postgres holds, replayed by the reference."""

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg
import httpx
import orjson

from matching import ListingFailed, ListingFunded, MarketRules
from tests.e2e.conftest import ADMIN, ServiceProcess
from tests.e2e.drill_checks import read_back
from tests.e2e.drive import (
    Json,
    Replay,
    close_due,
    comparable,
    get_json,
    open_listing,
    reference_bids,
    reference_depth,
    replay_journal,
    until_closed,
)
from tests.e2e.load import Target, check_acknowledgement
from tests.waiting import eventually

BIDDERS = 32
RESOLUTIONS = ["listing.funded", "listing.failed", "listing.cancelled"]
Db: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


@dataclass
class Takeover:
    """The writer to kill, the standby that should take over, and how long it took."""

    killed: ServiceProcess
    standby: ServiceProcess
    killed_at: float = 0.0  # monotonic
    ready_after_s: float | None = None
    first_201_after_s: float | None = None

    def figures(self) -> dict[str, Any]:
        return {
            "standby_ready_after_kill_s": _round(self.ready_after_s),
            "first_201_from_the_new_writer_after_kill_s": _round(self.first_201_after_s),
        }


@dataclass
class Burst:
    listings: list[Json] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    acked: list[tuple[Json, Json]] = field(default_factory=list)  # (request, 201 body)
    acked_at: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, upstream)
    unexpected: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)  # before the kill: a failure
    #: answers cut short by the kill (the writer died between a response's head and body,
    #: which nginx cannot retry): in doubt, so sent again with the same Idempotency-Key
    cut_by_the_kill: int = 0
    retried_503: int = 0
    killed_at: float | None = None  # monotonic


async def burst_through_router(base_url: str, takeover: Takeover, seed: int) -> Burst:
    """Bidders fire through the router; the writer is killed mid-burst; bidding goes on until
    a second after the standby is ready. A 503 is retried with the same Idempotency-Key and
    bytes until it gets another answer, so every request ends stored (201) or refused."""
    rng = random.Random(seed)
    burst = Burst()
    limits = httpx.Limits(max_connections=BIDDERS * 2, max_keepalive_connections=BIDDERS * 2)
    async with httpx.AsyncClient(
        base_url=base_url, headers=ADMIN, timeout=30.0, limits=limits
    ) as client:
        burst.listings = [
            await open_listing(client, amount=50_000_000, max_rate_bps=2400),
            await open_listing(client, amount=20_000_000, max_rate_bps=2000, pricing="uniform"),
            await open_listing(client, amount=600_000, max_rate_bps=2200, close_when_funded=True),
            await open_listing(client, amount=2_000_000, max_rate_bps=2000, duration_s=2),
        ]
        targets = [Target(x["id"], x["amount"], x["max_rate_bps"]) for x in burst.listings]
        stop = asyncio.Event()
        bidders = [
            asyncio.create_task(_bidder(client, random.Random(rng.random()), targets, burst, stop))
            for _ in range(BIDDERS)
        ]
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        takeover.killed_at = burst.killed_at = time.monotonic()
        assert await takeover.killed.kill() == -9
        await eventually(takeover.standby.ready, 60, "the standby taking over")
        takeover.ready_after_s = time.monotonic() - takeover.killed_at
        await asyncio.sleep(1.0)
        stop.set()
        async with asyncio.timeout(60):
            await asyncio.gather(*bidders)
    standby = f"127.0.0.1:{takeover.standby.port}"
    after = [t - takeover.killed_at for t, upstream in burst.acked_at if upstream == standby]
    takeover.first_201_after_s = min(after) if after else None
    return burst


async def _bidder(client: httpx.AsyncClient, rng: random.Random, targets: list[Target],
                  burst: Burst, stop: asyncio.Event) -> None:
    live = list(targets)
    while not stop.is_set() and live:
        target = rng.choice(live)
        request: Json = {
            "listing_id": target.listing_id,
            "amount": rng.randrange(5_000, min(target.amount, 300_000) + 1, 500),
            "min_rate_bps": rng.randrange(100, target.max_rate_bps * 11 // 10 + 1),
            "lender_id": f"lender-{rng.randrange(40)}",
        }
        key = f"{rng.getrandbits(64):016x}"
        content = orjson.dumps({k: v for k, v in request.items() if k != "listing_id"})
        response = await _answered(client, request, key, content, burst)
        if response is None:
            return
        if response.status_code == 201:
            burst.acked.append((request, response.json()))
            upstream = response.headers.get("X-Upstream", "").rsplit(",", 1)[-1].strip()
            burst.acked_at.append((time.monotonic(), upstream))
        elif response.status_code not in (409, 422):
            burst.unexpected.append(f"{response.status_code} {response.text[:300]}")
        elif response.json()["code"] == "listing_not_open":
            live.remove(target)


async def _answered(client: httpx.AsyncClient, request: Json, key: str, content: bytes,
                    burst: Burst) -> httpx.Response | None:
    """Send until the answer is not 503 (bounded); None after a transport error before the
    kill. One after the kill is the kill's doing: the request is sent again."""
    deadline = time.monotonic() + 60
    while True:
        try:
            response = await client.post(
                f"/v1/listings/{request['listing_id']}/bids", content=content,
                headers={"Idempotency-Key": key, "Content-Type": "application/json"},
            )
        except httpx.TransportError as error:
            if burst.killed_at is None:
                burst.transport_errors.append(repr(error))
                return None
            burst.cut_by_the_kill += 1
            assert time.monotonic() < deadline, f"transport errors for a minute: {error!r}"
            continue
        burst.answers[response.status_code] += 1
        if response.status_code != 503:
            return response
        assert "Retry-After" in response.headers, response.text
        assert time.monotonic() < deadline, "503s for a minute: no writer took over"
        burst.retried_503 += 1
        await asyncio.sleep(0.05)


async def books_match_the_journal(service: ServiceProcess, db: Db,
                                  burst: Burst | None) -> dict[str, Any]:
    """Every 201 of the burst is stored and read back from `service`, every stored bid was
    acknowledged, every book equals the reference fed the stored journal, and no listing was
    resolved twice."""
    summary: dict[str, Any] = {}
    async with service.client() as client:
        if burst is not None:
            summary.update(await _acknowledged_bids_are_stored(client, db, burst))
        lapsed = [
            str(r["id"]) for r in await db.fetch("SELECT id FROM listings WHERE closes_at < now()")
        ]
        for listing_id in lapsed:
            await until_closed(client, listing_id, seconds=15)
        replay = await replay_journal(db, MarketRules())
        passed = [r["closes_at"].timestamp() for r in replay.listing_rows
                  if str(r["id"]) in lapsed]
        due = close_due(replay, int(max(passed) * 1e6)) if passed else []
        resolutions = {
            e.listing_id: e for events in [*replay.outcomes.values(), due] for e in events
            if isinstance(e, ListingFunded | ListingFailed)
        }
        for row in replay.listing_rows:
            await _book_matches(client, replay, str(row["id"]), resolutions)
    await _resolved_at_most_once(db)
    stored = await db.fetchval("SELECT count(*) FROM bids")
    placed = await db.fetchval("SELECT count(*) FROM events WHERE type = 'bid.placed'")
    assert placed == stored, "one bid.placed event per stored bid"
    summary["bids_stored"] = stored
    summary["listings_resolved"] = len(resolutions)
    return summary


async def _acknowledged_bids_are_stored(client: httpx.AsyncClient, db: Db,
                                        burst: Burst) -> dict[str, Any]:
    acked = [bid for _, bid in burst.acked]
    for request, bid in burst.acked:
        check_acknowledgement(request, bid)
    assert len({b["id"] for b in acked}) == len(acked), "one bid per acknowledgement"
    assert len({b["seq"] for b in acked}) == len(acked), "seqs are never reused"
    stored = {str(r["id"]): r for r in await db.fetch("SELECT * FROM bids")}
    missing = [b["id"] for b in acked if b["id"] not in stored]
    assert not missing, f"{len(missing)} acknowledged bids lost, e.g. {missing[:3]}"
    unowned = stored.keys() - {b["id"] for b in acked}
    assert not unowned, f"{len(unowned)} stored bids no answer owned up to"
    return {"bids_acknowledged": len(acked),
            "bids_read_back_from_the_new_writer": await read_back(client, acked),
            "answers_503_retried": burst.retried_503,
            "answers_cut_short_by_the_kill": burst.cut_by_the_kill}


async def _book_matches(client: httpx.AsyncClient, replay: Replay, listing_id: str,
                        resolutions: dict[str, ListingFunded | ListingFailed]) -> None:
    reference = replay.engine
    listing = await get_json(client, f"/v1/listings/{listing_id}")
    summary = reference.summary(listing_id)
    assert summary is not None
    assert (listing["status"], listing["bid_count"], listing["funded_amount"]) == (
        summary.status, summary.bid_count, summary.funded_amount
    ), (listing, summary)
    bids = (await get_json(client, f"/v1/listings/{listing_id}/bids"))["data"]
    assert comparable(bids) == reference_bids(reference, listing_id), f"book of {listing_id}"
    depth = (await get_json(client, f"/v1/listings/{listing_id}/book"))["data"]
    assert depth == reference_depth(reference, listing_id), f"depth of {listing_id}"
    resolution = resolutions.get(listing_id)
    if isinstance(resolution, ListingFunded):
        loan = await get_json(client, f"/v1/loans/{listing['loan_id']}")
        assert (loan["principal"], loan["rate_bps"]) == (resolution.principal, resolution.rate_bps)


async def _resolved_at_most_once(db: Db) -> None:
    rows = await db.fetch(
        "SELECT listing_id, count(*) AS n FROM events WHERE type = ANY($1::text[])"
        " GROUP BY listing_id", RESOLUTIONS,
    )
    events = {str(r["listing_id"]): r["n"] for r in rows}
    assert all(n == 1 for n in events.values()), f"a listing resolved twice: {events}"
    closed = {
        str(r["id"]) for r in await db.fetch("SELECT id FROM listings WHERE status <> 'open'")
    }
    assert set(events) == closed, "every closed listing has its one resolution event"
    loans = await db.fetch("SELECT listing_id, count(*) AS n FROM loans GROUP BY listing_id")
    assert all(r["n"] == 1 for r in loans), "one loan per funded listing"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
