"""kill -9 in the middle of bid bursts, again and again: nothing acknowledged is ever lost.

Standing orders are created before the first listing opens, so every listing gets auto bids
when it opens. Each round opens fresh short-lived listings (one closes when funded, one at a
deadline that may fall while the service is down), fires 48 concurrent bidders, 4 money movers
(deposits and withdrawals on the savers' accounts, whose owners bid too) and one standing-order
changer (pause, resume, new budgets), kills the process at a random moment, restarts it, checks
that the money in custody is conserved, and retries every request whose answer the crash
swallowed with the same Idempotency-Key. Then: every 2xx is stored and read back unchanged,
every stored bid and movement is owned by some answer (or, for an auto bid, by its listing's
opening), the books equal the naive reference fed the stored journal, every lender's reserved
money is its live bids, every order's is its live auto bids and its last acknowledged change
holds, nothing resolved twice.

Set LOAN_AUCTION_SOAK_KILLS=N to run the drill with N kills instead of the default 6, and
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

from matching import Fill, ListingFailed, ListingFunded, MarketRules
from tests.e2e.conftest import UNLIMITED, ServiceProcess, fund
from tests.e2e.drive import (
    Json,
    Replay,
    close_due,
    comparable,
    epoch,
    get_json,
    open_listing,
    reference_bids,
    reference_depth,
    replay_journal,
    until_closed,
)
from tests.e2e.load import (
    SAVERS,
    Tally,
    Target,
    bidder,
    check_acknowledgement,
    mover,
    order_changer,
    retry_in_doubt,
)
from tests.money import Balances, assert_conserved
from tests.unit.reference import ReferenceEngine

BIDDERS = 48
MOVERS = 4
DEFAULT_KILLS = 6
RESOLUTIONS = ("listing.funded", "listing.failed", "listing.cancelled")


@pytest.fixture
def service_env() -> dict[str, str]:
    return UNLIMITED  # this drives load through one key


def _kills() -> int:
    soak = os.environ.get("LOAN_AUCTION_SOAK_KILLS")
    return max(1, int(soak)) if soak else DEFAULT_KILLS


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


async def _create_standing_orders(client: httpx.AsyncClient) -> list[Json]:
    """Orders that match the drill's listings (grade B, 12 months) in different ways: a big
    budget, one that runs out, one short of money, one paused, one that never matches."""
    specs: list[Json] = [
        {"lender_id": "lender-0", "min_rate_bps": 1_500, "amount_per_listing": 60_000,
         "budget": 50_000_000},
        {"lender_id": "lender-1", "min_rate_bps": 1_000, "amount_per_listing": 100_000,
         "budget": 400_000, "term_months_max": 24},
        {"lender_id": SAVERS[0], "min_rate_bps": 1_700, "amount_per_listing": 30_000,
         "budget": 10_000_000},
        {"lender_id": "lender-3", "min_rate_bps": 1_200, "amount_per_listing": 20_000,
         "budget": 5_000_000, "active": False},
        {"lender_id": "lender-2", "grades": ["A"], "min_rate_bps": 1_000,
         "amount_per_listing": 20_000, "budget": 5_000_000},
    ]
    orders = []
    for spec in specs:
        body = {"grades": ["B"], "term_months_min": 1, "term_months_max": 60, **spec}
        response = await client.post("/v1/standing-orders", json=body)
        assert response.status_code == 201, response.text
        orders.append(response.json())
    return orders


async def _burst(service: ServiceProcess, rng: random.Random, targets: list[Target],
                 tally: Tally, graceful: bool, orders: list[Json]) -> None:
    """Bidders fire at the live service; SIGKILL (or SIGTERM) lands after a random delay.

    Bidders drop a listing once it answers `listing_not_open`, so the burst stays on live books.
    """
    stopping = asyncio.Event()
    async with service.client() as client:
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
        ] + [
            asyncio.create_task(order_changer(
                client, random.Random(rng.random()), orders, tally, stopping,
                until=time.monotonic() + 10, max_requests=10_000,
            ))
        ]
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        stopping.set()
        if graceful:
            assert await service.stop() in (0, -15)  # uvicorn re-raises SIGTERM when done
        else:
            assert await service.kill() == -9
        async with asyncio.timeout(15):
            await asyncio.gather(*tasks)


@dataclass
class Drill:
    listings: list[Json] = field(default_factory=list)
    orders: list[Json] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    restarts: list[float] = field(default_factory=list)


async def _drill(service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]",
                 rng: random.Random, rounds: int, graceful: bool) -> Drill:
    """`rounds` times: open fresh listings, burst, stop mid-burst, restart, retry the in-doubt."""
    drill = Drill()
    async with service.client() as client:
        await fund(client, *SAVERS, amount=50_000)
        drill.orders = await _create_standing_orders(client)
        drill.listings = await _open_long_listings(client)
    async with asyncio.timeout(60 + rounds * 30):
        for _ in range(rounds):
            async with service.client() as client:
                drill.listings += await _open_short_listings(client, rng)
                targets = [
                    Target(x["id"], x["amount"], x["max_rate_bps"]) for x in drill.listings
                    if (await get_json(client, f"/v1/listings/{x['id']}"))["status"] == "open"
                ]
            await _burst(service, rng, targets, drill.tally, graceful, drill.orders)
            drill.restarts.append(await service.start())
            await assert_conserved(db)
            async with service.client() as client:
                await retry_in_doubt(client, drill.tally)
    return drill


async def _verify(service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]",
                  drill: Drill) -> dict[str, Any]:
    """Nothing acknowledged lost, books as the reference rebuilds them, resolved once each."""
    tally, listings = drill.tally, drill.listings
    assert not tally.unexpected, f"answers other than 2xx/409/422: {tally.unexpected[:5]}"
    assert not tally.early_transport_errors, tally.early_transport_errors[:5]
    acked = [bid for _, bid in tally.acknowledged]
    for request, bid in tally.acknowledged:
        check_acknowledgement(request, bid)
    assert len({bid["id"] for bid in acked}) == len(acked), "a replay is the same bid, once"
    seqs = [bid["seq"] for bid in acked]
    assert len(set(seqs)) == len(seqs), "every acknowledged seq is unique"
    assert len(acked) >= 30, f"the drill barely bid: {tally.statuses}"

    # Every acknowledged bid is stored, and the API reads it back, unchanged.
    stored = {str(r["id"]): r for r in await db.fetch("SELECT * FROM bids")}
    missing = [bid["id"] for bid in acked if bid["id"] not in stored]
    assert not missing, f"{len(missing)} acknowledged bids lost, e.g. {missing[:3]}"
    auto = {i: r for i, r in stored.items() if r["standing_order_id"] is not None}
    assert {str(r["listing_id"]) for r in auto.values()} <= {x["id"] for x in listings}
    assert {str(r["standing_order_id"]) for r in auto.values()} <= {o["id"] for o in drill.orders}
    unknown = stored.keys() - auto.keys() - {bid["id"] for bid in acked}
    assert not unknown, (
        f"{len(unknown)} stored bids no answer owned up to: a retry with the same"
        " Idempotency-Key must have replayed them"
    )
    for bid in acked:
        row = stored[bid["id"]]
        assert (row["seq"], row["amount"], row["min_rate_bps"], str(row["listing_id"])) == (
            bid["seq"], bid["amount"], bid["min_rate_bps"], bid["listing_id"]
        )
    async with service.client() as client:
        found = await _read_back(client, acked)

        # The short listings' deadlines have passed: each is resolved (by the scheduler, or by
        # recovery if it lapsed while the service was down), as the reference resolves it.
        lapsed = [x for x in listings if epoch(x["closes_at"]) < time.time() + 600]
        await asyncio.sleep(max(0.0, max(epoch(x["closes_at"]) for x in lapsed) - time.time()))
        for listing in lapsed:
            await until_closed(client, listing["id"], seconds=10)
        replay = await replay_journal(db, MarketRules())
        due = close_due(replay, max(int(epoch(x["closes_at"]) * 1e6) for x in lapsed))
        resolutions = {
            e.listing_id: e for events in [*replay.outcomes.values(), due] for e in events
            if isinstance(e, ListingFunded | ListingFailed)
        }
        for listing in listings:
            await _matches_reference(client, db, replay.engine, listing["id"], resolutions)

        money = await _money_matches(client, db, drill.tally, replay.engine)
        orders = await _orders_match(client, db, drill, replay)

    await _resolved_at_most_once(db, [x["id"] for x in listings])
    placed = await db.fetchval("SELECT count(*) FROM events WHERE type = 'bid.placed'")
    assert placed == len(stored), "one bid.placed event per stored bid (same transaction)"
    return {
        "restarts": len(drill.restarts),
        "restart_seconds_max": round(max(drill.restarts), 3),
        "restart_seconds_mean": round(sum(drill.restarts) / len(drill.restarts), 3),
        "requests": tally.requests, "answers": {str(k): v for k, v in tally.statuses.items()},
        "rejections": dict(tally.codes), "transport_errors_after_stop": tally.transport_errors,
        "bids_acknowledged": len(acked), "bids_found": found, "bids_stored": len(stored),
        "auto_bids_stored": len(auto), **money, **orders,
        "in_doubt_retried": tally.retried, "retries_replayed": tally.replayed,
        "listings": dict(Counter(x["status"] for x in await _listing_states(db))),
        "resolution_events": await db.fetchval(
            "SELECT count(*) FROM events WHERE type = ANY($1::text[])", list(RESOLUTIONS)
        ),
    }


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


async def _money_matches(
    client: httpx.AsyncClient, db: "asyncpg.Connection[asyncpg.Record]", tally: Tally,
    reference: ReferenceEngine,
) -> dict[str, int]:
    """Every acknowledged deposit and withdrawal is stored as answered and no other is; the
    money is conserved; the API shows the stored balances; reserved money is the live bids."""
    stored = {
        r["id"]: r for r in await db.fetch(
            "SELECT * FROM ledger_entries WHERE kind IN ('deposit', 'withdrawal')"
            " AND reference = 'drill'"
        )
    }
    for request, body in tally.moved:
        row = stored.get(body["entry"]["id"])
        assert row is not None, f"acknowledged movement lost: {body}"
        assert (row["kind"] + "s", row["amount"]) == (request["kind"], request["amount"])
        assert request["account"] in (row["debit_account"], row["credit_account"])
    assert len(stored) == len({body["entry"]["id"] for _, body in tally.moved}), (
        "a stored movement no answer owned up to")
    balances = await assert_conserved(db)
    await _api_shows(client, balances)
    live: dict[str, int] = {}
    for listing_id in reference.listing_ids():
        for bid in reference.bids(listing_id) or []:
            if bid.status == "active":
                live[bid.lender_id] = live.get(bid.lender_id, 0) + bid.amount
    assert {a: r for a, (_, r) in balances.items() if r} == live, "reserved is not the live bids"
    return {"movements_acknowledged": len(tally.moved), "movements_stored": len(stored),
            "insufficient_funds": tally.codes["insufficient_funds"]}


async def _orders_match(
    client: httpx.AsyncClient, db: "asyncpg.Connection[asyncpg.Record]", drill: Drill,
    replay: Replay,
) -> dict[str, int]:
    """Each order's last acknowledged change holds; its reserved money is its live auto bids
    (the books as the reference rebuilds them) and its settled money its auto bids' fills; the
    API shows what Postgres holds."""
    last: dict[str, Json] = {}
    for request, body in drill.tally.order_changes:
        assert body["id"] == request["order_id"]
        assert all(body[k] == request[k] for k in ("budget", "active") if k in request), body
        last[body["id"]] = body
    rows_by_id = {str(r["id"]): r for r in replay.bid_rows}
    live: dict[str, int] = {}
    for listing_id in replay.engine.listing_ids():
        for bid in replay.engine.bids(listing_id) or []:
            order_id = rows_by_id[bid.bid_id]["standing_order_id"]
            if bid.status == "active" and order_id is not None:
                live[str(order_id)] = live.get(str(order_id), 0) + bid.amount
    fills = await db.fetch(
        "SELECT b.standing_order_id, sum(f.amount)::bigint AS settled FROM fills f"
        " JOIN bids b ON b.id = f.bid_id WHERE b.standing_order_id IS NOT NULL"
        " GROUP BY b.standing_order_id"
    )
    settled = {str(r["standing_order_id"]): r["settled"] for r in fills}
    rows = {str(r["id"]): r for r in await db.fetch("SELECT * FROM standing_orders")}
    for order in drill.orders:
        row, shown = rows[order["id"]], await get_json(client, f"/v1/standing-orders/{order['id']}")
        want = last.get(order["id"], order)
        assert (row["budget"], row["active"]) == (want["budget"], want["active"]), order["id"]
        assert (row["reserved"], row["settled"]) == (
            live.get(order["id"], 0), settled.get(order["id"], 0)), order["id"]
        assert (shown["budget"], shown["active"], shown["reserved"], shown["settled"],
                shown["queue_ticket"]) == (row["budget"], row["active"], row["reserved"],
                                           row["settled"], row["ticket"]), order["id"]
    return {"order_changes_acknowledged": len(drill.tally.order_changes),
            "orders_with_live_auto_bids": len(live)}


async def _api_shows(client: httpx.AsyncClient, balances: Balances) -> None:
    for account in (*SAVERS, "lender-0", "borrower-1"):
        if account in balances:
            got = await get_json(client, f"/v1/accounts/{account}")
            assert (got["available"], got["reserved"]) == balances[account], account


async def _read_back(client: httpx.AsyncClient, acked: list[Json]) -> int:
    """GET /v1/bids/{id} for every acknowledged bid (32 at a time); returns how many matched."""
    gate = asyncio.Semaphore(32)

    async def one(bid: Json) -> None:
        async with gate:
            got = await get_json(client, f"/v1/bids/{bid['id']}")
        assert (got["seq"], got["amount"], got["min_rate_bps"]) == (
            bid["seq"], bid["amount"], bid["min_rate_bps"]
        ), (bid, got)

    async with asyncio.timeout(60):
        await asyncio.gather(*(one(bid) for bid in acked))
    return len(acked)


async def _matches_reference(
    client: httpx.AsyncClient, db: "asyncpg.Connection[asyncpg.Record]",
    reference: ReferenceEngine, listing_id: str,
    resolutions: dict[str, ListingFunded | ListingFailed],
) -> None:
    """The service's book (open) or its books (closed) equal the reference's."""
    listing = await get_json(client, f"/v1/listings/{listing_id}")
    summary = reference.summary(listing_id)
    assert summary is not None
    assert listing["status"] == summary.status, (listing, summary)
    assert listing["bid_count"] == summary.bid_count
    assert listing["funded_amount"] == summary.funded_amount
    bids = (await get_json(client, f"/v1/listings/{listing_id}/bids"))["data"]
    assert comparable(bids) == reference_bids(reference, listing_id), f"book of {listing_id}"
    depth = (await get_json(client, f"/v1/listings/{listing_id}/book"))["data"]
    assert depth == reference_depth(reference, listing_id), f"depth of {listing_id}"
    if summary.status == "open":
        assert listing["marginal_rate_bps"] == summary.marginal_rate_bps
        return
    resolution = resolutions[listing_id]
    assert listing["close_reason"] == resolution.reason
    if isinstance(resolution, ListingFunded):
        loan = await get_json(client, f"/v1/loans/{listing['loan_id']}")
        assert (loan["principal"], loan["rate_bps"]) == (resolution.principal, resolution.rate_bps)
        assert [(f["bid_id"], f["amount"], f["rate_bps"]) for f in loan["fills"]] == [
            (f.bid_id, f.amount, f.rate_bps) for f in sorted(resolution.fills, key=_by_seq)
        ], f"fills of {listing_id} (the API lists them in seq order)"
    else:
        assert listing["loan_id"] is None
        assert await db.fetchval(
            "SELECT count(*) FROM loans WHERE listing_id = $1::uuid", listing_id
        ) == 0


async def _resolved_at_most_once(
    db: "asyncpg.Connection[asyncpg.Record]", listing_ids: list[str]
) -> None:
    rows = await db.fetch(
        "SELECT listing_id, count(*) AS n FROM events WHERE type = ANY($1::text[])"
        " GROUP BY listing_id", list(RESOLUTIONS),
    )
    events = {str(r["listing_id"]): r["n"] for r in rows}
    assert all(n == 1 for n in events.values()), f"a listing resolved twice: {events}"
    for state in await _listing_states(db):
        closed = state["status"] != "open"
        assert events.get(str(state["id"]), 0) == int(closed), state
    loans = await db.fetch("SELECT listing_id, count(*) AS n FROM loans GROUP BY listing_id")
    assert all(r["n"] == 1 for r in loans)
    funded = {str(s["id"]) for s in await _listing_states(db) if s["status"] == "funded"}
    assert {str(r["listing_id"]) for r in loans} == funded
    assert set(events) <= set(listing_ids)


async def _listing_states(db: "asyncpg.Connection[asyncpg.Record]") -> list[Json]:
    rows = await db.fetch("SELECT id, status FROM listings ORDER BY seq")
    return [{"id": str(r["id"]), "status": r["status"]} for r in rows]


def _by_seq(fill: Fill) -> int:
    return fill.seq
