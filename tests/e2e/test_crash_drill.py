"""kill -9 in the middle of every kind of write, again and again: nothing acknowledged is lost.

Standing orders are created before the first listing opens, so every listing gets auto bids
when it opens. Each round opens fresh short-lived listings (one closes when funded, one at a
deadline that may fall while the service is down), fires 48 concurrent bidders, 4 money movers
(deposits and withdrawals on the savers' accounts, whose owners bid too), a lister (opens a
listing, bids on it, accepts or cancels it) and a standing-order changer (pause, resume, new
budgets). At a random moment it sends one held write (tests/e2e/held_writes.py: a bid, a
deposit, a withdrawal, a listing open, an accept, a cancel, a standing-order change, in turn),
which the service, run as tests/e2e/held_answers.py, commits and then does not answer; once its
record is in Postgres the process is killed. It restarts it, checks that the money in custody
is conserved, and retries every request whose answer the crash swallowed with the same
Idempotency-Key: each held write must be answered from its stored record (Idempotent-Replayed).
Then: every success is stored and read back unchanged, every stored bid, listing and movement is
owned by some answer (an auto bid by its listing's opening), each 201's allocation is the
reference's right after that bid, the books, loans and balances equal the naive reference fed
the stored journal, every order's reserved money is its live auto bids and its last acknowledged
change holds, nothing resolved twice.

Set LOAN_AUCTION_SOAK_KILLS=N to run the drill with N kills instead of one per held write, and
LOAN_AUCTION_E2E_SEED to replay a run's random choices (timing still varies).
"""

import asyncio
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from matching import ListingFailed, ListingFunded, MarketRules
from tests.e2e.conftest import UNLIMITED, ServiceProcess, fund
from tests.e2e.drill_checks import (
    RESOLUTIONS,
    allocated_as_the_reference_placed_them,
    bids_stored_as_answered,
    listing_states,
    listings_stored_as_answered,
    money_matches,
    orders_match,
    read_back,
    resolved_at_most_once,
)
from tests.e2e.drive import (
    Json,
    Replay,
    close_due,
    epoch,
    get_json,
    matches_reference,
    open_listing,
    replay_journal,
    resolutions,
    until_closed,
)
from tests.e2e.held_answers import HOLD_PREFIX
from tests.e2e.held_writes import HELD_ORDER_LENDER, HELD_WRITES, Held, HeldWrite
from tests.e2e.load import (
    SAVERS,
    Tally,
    Target,
    bidder,
    lister,
    mover,
    order_changer,
    retry_in_doubt,
    send,
)
from tests.money import assert_conserved

BIDDERS = 48
MOVERS = 4


@pytest.fixture
def service_env() -> dict[str, str]:
    return UNLIMITED  # this drives load through one key


@pytest.fixture
def service_module() -> str:
    return "tests.e2e.held_answers"  # holds the answer to a held write after its commit


def _kills() -> int:
    soak = os.environ.get("LOAN_AUCTION_SOAK_KILLS")
    return max(1, int(soak)) if soak else len(HELD_WRITES)


async def _create_standing_orders(client: httpx.AsyncClient) -> list[Json]:
    """Orders that match the drill's listings (grade B, 12 months) in different ways: a big
    budget, one that runs out, one short of money, one paused, and one that never matches
    (only the held writes change that one)."""
    specs: list[Json] = [
        {"lender_id": "lender-0", "min_rate_bps": 1_500, "amount_per_listing": 60_000,
         "budget": 50_000_000},
        {"lender_id": "lender-1", "min_rate_bps": 1_000, "amount_per_listing": 100_000,
         "budget": 400_000, "term_months_max": 24},
        {"lender_id": SAVERS[0], "min_rate_bps": 1_700, "amount_per_listing": 30_000,
         "budget": 10_000_000},
        {"lender_id": "lender-3", "min_rate_bps": 1_200, "amount_per_listing": 20_000,
         "budget": 5_000_000, "active": False},
        {"lender_id": HELD_ORDER_LENDER, "grades": ["A"], "min_rate_bps": 1_000,
         "amount_per_listing": 20_000, "budget": 5_000_000},
    ]
    orders = []
    for spec in specs:
        body = {"grades": ["B"], "term_months_min": 1, "term_months_max": 60, **spec}
        response = await client.post("/v1/standing-orders", json=body)
        assert response.status_code == 201, response.text
        orders.append(response.json())
    return orders


async def _open_long_listings(client: httpx.AsyncClient) -> list[Json]:
    """Books that stay open through the whole drill."""
    specs: list[dict[str, Any]] = [
        {"amount": 2_000_000, "max_rate_bps": 2000},
        {"amount": 20_000_000, "max_rate_bps": 2400, "pricing": "uniform"},
        {"amount": 100_000_000, "max_rate_bps": 1800, "min_funding_bps": 7000},
    ]
    return [await open_listing(client, duration_s=3600, **spec) for spec in specs]


async def _open_short_listings(client: httpx.AsyncClient, rng: random.Random) -> list[Json]:
    """Per round: one that closes when funded, one whose deadline falls in a burst or a gap."""
    return [
        await open_listing(client, amount=rng.choice([300_000, 800_000]), max_rate_bps=2200,
                           duration_s=3600, close_when_funded=True),
        await open_listing(
            client, amount=rng.choice([500_000, 2_000_000, 50_000_000]), max_rate_bps=2000,
            duration_s=rng.choice([1, 2, 3]), pricing=rng.choice(["pay_as_bid", "uniform"]),
            min_funding_bps=rng.choice([10_000, 7_000]),
        ),
    ]


async def _burst(service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]",
                 rng: random.Random, targets: list[Target], drill: "Drill",
                 held: HeldWrite | None) -> None:
    """Bidders, movers and a lister fire at the live service; after a random delay, SIGKILL
    lands once the held write has committed (or, without one, SIGTERM lands).

    Bidders drop a listing once it answers `listing_not_open`, so the burst stays on live books.
    """
    stopping = asyncio.Event()
    tally = drill.tally
    async with service.client() as client:
        prepared = None if held is None else await held.prepare(client, rng)
        if prepared is not None:
            drill.listings += prepared.opened
            tally.acknowledged += prepared.bids
        tasks = [
            asyncio.create_task(bidder(
                client, random.Random(rng.random()), targets, tally, stopping,
                until=time.monotonic() + 10, max_requests=10_000,
            ))
            for _ in range(BIDDERS)
        ] + [
            asyncio.create_task(mover(
                client, random.Random(rng.random()), tally, stopping,
                until=time.monotonic() + 10, max_requests=10_000,
            ))
            for _ in range(MOVERS)
        ] + [asyncio.create_task(lister(
            client, random.Random(rng.random()), tally, stopping,
            until=time.monotonic() + 10, max_requests=10_000,
        ))] + [asyncio.create_task(order_changer(
            client, random.Random(rng.random()), drill.changing_orders(), tally, stopping,
            until=time.monotonic() + 10, max_requests=10_000,
        ))]
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        if held is None or prepared is None:
            stopping.set()
            assert await service.stop() in (0, -15)  # uvicorn re-raises SIGTERM when done
        else:
            key = f"{HOLD_PREFIX}{rng.getrandbits(64):016x}"
            drill.held.append((held.name, key))
            tasks.append(asyncio.create_task(
                _send_held(client, rng, tally, stopping, prepared, key)
            ))
            await _committed(db, key)  # and not answered: the service holds it
            stopping.set()
            assert await service.kill() == -9
        async with asyncio.timeout(15):
            await asyncio.gather(*tasks)


async def _send_held(client: httpx.AsyncClient, rng: random.Random, tally: Tally,
                     killed: asyncio.Event, held: Held, key: str) -> None:
    """Its answer never comes: the kill lands after its commit (kept in doubt for a retry)."""
    response = await send(client, rng, tally, killed, held.request, held.content, key)
    assert response is None, f"a held write was answered: {response}"


async def _committed(db: "asyncpg.Connection[asyncpg.Record]", key: str) -> None:
    async with asyncio.timeout(15):
        while not await db.fetchval("SELECT 1 FROM idempotency_keys WHERE key = $1", key):
            await asyncio.sleep(0.01)


@dataclass
class Drill:
    listings: list[Json] = field(default_factory=list)  # opened by the drill itself
    tally: Tally = field(default_factory=Tally)
    restarts: list[float] = field(default_factory=list)
    held: list[tuple[str, str]] = field(default_factory=list)  # (write, Idempotency-Key)
    orders: list[Json] = field(default_factory=list)

    def changing_orders(self) -> list[Json]:
        """The orders the order changer may touch: all but the held writes' own."""
        return [o for o in self.orders if o["lender_id"] != HELD_ORDER_LENDER]

    def all_listings(self) -> list[Json]:
        """The drill's own and those the lister (or a held open) was answered 201 for."""
        return self.listings + [body for _, body in self.tally.opened]


async def _drill(service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]",
                 rng: random.Random, rounds: int, graceful: bool) -> Drill:
    """`rounds` times: open fresh listings, burst, stop mid-burst, restart, retry the in-doubt."""
    drill = Drill()
    async with service.client() as client:
        await fund(client, *SAVERS, amount=50_000)
        drill.orders = await _create_standing_orders(client)
        drill.listings = await _open_long_listings(client)
    async with asyncio.timeout(60 + rounds * 30):
        for round_ in range(rounds):
            async with service.client() as client:
                drill.listings += await _open_short_listings(client, rng)
                targets = [
                    Target(x["id"], x["amount"], x["max_rate_bps"]) for x in drill.listings
                    if (await get_json(client, f"/v1/listings/{x['id']}"))["status"] == "open"
                ]
            held = None if graceful else HELD_WRITES[round_ % len(HELD_WRITES)]
            await _burst(service, db, rng, targets, drill, held)
            drill.restarts.append(await service.start())
            await assert_conserved(db)
            async with service.client() as client:
                await retry_in_doubt(client, drill.tally)
    return drill


async def _verify(service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]",
                  drill: Drill) -> dict[str, Any]:
    """Nothing acknowledged lost, books as the reference rebuilds them, resolved once each."""
    tally = drill.tally
    assert not tally.unexpected, f"answers other than 2xx/409/422: {tally.unexpected[:5]}"
    assert not tally.early_transport_errors, tally.early_transport_errors[:5]
    held = {key for _, key in drill.held}
    assert held <= tally.replayed_keys, (
        "a write committed before the kill was not answered from its record on retry: "
        f"{[name for name, key in drill.held if key not in tally.replayed_keys]}"
    )
    listing_ids = {x["id"] for x in drill.all_listings()}
    acked, stored, auto = await bids_stored_as_answered(db, tally, listing_ids, drill.orders)
    await listings_stored_as_answered(db, drill.listings, drill.tally)
    async with service.client() as client:
        found = await read_back(client, acked)
        replay, resolved = await _replay_after_deadlines(client, db, drill.listings)
        allocated_as_the_reference_placed_them(tally, replay)
        for listing in drill.all_listings():
            await matches_reference(client, db, replay.engine, listing["id"], resolved)
        money = await money_matches(client, db, drill.tally, replay)
        orders = await orders_match(client, db, drill.tally, drill.orders, replay)

    await resolved_at_most_once(db, [x["id"] for x in drill.all_listings()])
    placed = await db.fetchval("SELECT count(*) FROM events WHERE type = 'bid.placed'")
    assert placed == stored, "one bid.placed event per stored bid (same transaction)"
    return {
        "restarts": len(drill.restarts),
        "restart_seconds_max": round(max(drill.restarts), 3),
        "restart_seconds_mean": round(sum(drill.restarts) / len(drill.restarts), 3),
        "requests": tally.requests, "answers": {str(k): v for k, v in tally.statuses.items()},
        "rejections": dict(tally.codes), "transport_errors_after_stop": tally.transport_errors,
        "bids_acknowledged": len(acked), "bids_found": found, "bids_stored": stored,
        "auto_bids_stored": auto, **orders,
        "listings_opened_by_the_lister": len(tally.opened),
        "accepts_and_cancels_acknowledged": len(tally.closed),
        **money,
        "held_writes_replayed": [name for name, _ in drill.held],
        "in_doubt_retried": tally.retried, "retries_replayed": tally.replayed,
        "listings": dict(Counter(x["status"] for x in await listing_states(db))),
        "resolution_events": await db.fetchval(
            "SELECT count(*) FROM events WHERE type = ANY($1::text[])", list(RESOLUTIONS)
        ),
    }


async def _replay_after_deadlines(
    client: httpx.AsyncClient, db: "asyncpg.Connection[asyncpg.Record]", listings: list[Json]
) -> tuple[Replay, dict[str, ListingFunded | ListingFailed]]:
    """The short listings' deadlines have passed: each is resolved (by the scheduler, or by
    recovery if it lapsed while the service was down); then the reference replays the journal
    and resolves them too."""
    lapsed = [x for x in listings if epoch(x["closes_at"]) < time.time() + 600]
    await asyncio.sleep(max(0.0, max(epoch(x["closes_at"]) for x in lapsed) - time.time()))
    for listing in lapsed:
        await until_closed(client, listing["id"], seconds=10)
    replay = await replay_journal(db, MarketRules())
    due = close_due(replay, max(int(epoch(x["closes_at"]) * 1e6) for x in lapsed))
    return replay, resolutions(replay, due)


@pytest.mark.slow
async def test_every_acknowledged_bid_survives_repeated_kill_nine_in_mid_burst(
    service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]", rng_seed: int,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    kills = _kills()
    drill = await _drill(service, db, random.Random(rng_seed), kills, graceful=False)
    counts = {"seed": rng_seed, "kills": kills, **await _verify(service, db, drill),
              "seconds": round(time.monotonic() - started, 2)}
    print("crash drill:", json.dumps(counts, indent=2))
    (tmp_path / "crash_drill.json").write_text(json.dumps(counts, indent=2))
    print(f"written to {tmp_path / 'crash_drill.json'}")


@pytest.mark.slow
async def test_a_graceful_stop_in_mid_burst_keeps_every_acknowledged_bid_too(
    service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]", rng_seed: int,
) -> None:
    drill = await _drill(service, db, random.Random(rng_seed), 2, graceful=True)
    counts = await _verify(service, db, drill)
    print("graceful drill:", json.dumps(counts))
