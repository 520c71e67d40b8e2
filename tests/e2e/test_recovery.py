"""Stopping and killing the process: the books come back the same; lapsed deadlines resolve once."""

import asyncio
import contextlib
import random
import time

import asyncpg
import httpx

from tests.e2e.conftest import ServiceProcess
from tests.e2e.drive import (
    Snapshot,
    bid_commit_running,
    bid_ok,
    epoch,
    get_json,
    open_listing,
    place_bid,
    snapshot,
    until_closed,
)
from tests.waiting import eventually


async def _bid_on(client: httpx.AsyncClient, listing_ids: list[str], rng: random.Random,
                  count: int) -> int:
    """`count` random bids spread over the listings; returns how many were accepted."""
    accepted = 0
    for n in range(count):
        lid = listing_ids[n % len(listing_ids)]
        response = await place_bid(
            client, lid, rng.randrange(5_000, 120_001, 1_000), rng.randrange(500, 2001, 25),
            f"lender-{rng.randrange(8)}",
        )
        assert response.status_code in (201, 409), response.text
        accepted += response.status_code == 201
    return accepted


async def _snapshots(client: httpx.AsyncClient, listing_ids: list[str]) -> dict[str, Snapshot]:
    return {lid: await snapshot(client, lid) for lid in listing_ids}


async def test_a_restart_rebuilds_every_book_identically_after_sigterm_and_after_sigkill(
    service: ServiceProcess, rng_seed: int
) -> None:
    rng = random.Random(rng_seed)
    async with service.client() as client:
        amounts = (200_000, 300_000, 500_000, 1_000_000)
        listings = [
            await open_listing(client, amount=amount, pricing=pricing, duration_s=600)
            for amount, pricing in zip(amounts, ("pay_as_bid", "uniform") * 2, strict=True)
        ]
        ids = [x["id"] for x in listings]
        assert await _bid_on(client, ids, rng, 80) > 20
        await bid_ok(client, ids[0], 200_000, 50, "whale")  # covers it alone: the rest are outbid
        before = await _snapshots(client, ids)
    assert {b["status"] for b in before[ids[0]].bids[1:]} == {"outbid"}

    # uvicorn re-raises SIGTERM once its graceful shutdown is done, so -15 is a clean exit too.
    assert await service.stop() in (0, -15)
    assert "Application shutdown complete" in service.log_tail(2_000), "shut down gracefully"
    await service.start()
    async with service.client() as client:
        assert await _snapshots(client, ids) == before, "same books after SIGTERM"
        await _bid_on(client, ids, rng, 40)
        for lid in ids:  # below any marginal: always admitted, so every book changes
            await bid_ok(client, lid, 5_000, 10, "minnow")
        before = await _snapshots(client, ids)

    assert await service.kill() == -9
    await service.start()
    async with service.client() as client:
        assert await _snapshots(client, ids) == before, "same books after SIGKILL"
        seqs = [b["seq"] for s in before.values() for b in s.bids]
        fresh = await bid_ok(client, ids[-1], 5_000, 1, "late-lender")
        assert fresh["seq"] > max(seqs), "seq continues after the highest stored one"


async def test_a_deadline_that_passed_while_the_service_was_down_is_resolved_once_on_restart(
    service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]"
) -> None:
    async with service.client() as client:
        funded = await open_listing(client, amount=200_000, max_rate_bps=2000, duration_s=3)
        failed = await open_listing(client, amount=500_000, max_rate_bps=2000, duration_s=3)
        first = await bid_ok(client, funded["id"], 120_000, 1400, "ann")
        second = await bid_ok(client, funded["id"], 120_000, 1100, "ben")
        cheaper = await bid_ok(client, funded["id"], 100_000, 900, "cat")
        lonely = await bid_ok(client, failed["id"], 100_000, 1500, "ann")
        assert time.time() < epoch(funded["closes_at"]) - 0.5, "test too slow to beat the deadline"
    await service.kill()
    closes_at = max(epoch(funded["closes_at"]), epoch(failed["closes_at"]))
    await asyncio.sleep(max(0.0, closes_at - time.time()) + 0.5)
    assert await db.fetchval("SELECT count(*) FROM listings WHERE status = 'open'") == 2

    await service.start()
    async with service.client() as client:
        done = await until_closed(client, funded["id"], seconds=10)
        assert done["status"] == "funded" and done["close_reason"] == "deadline"
        assert done["closed_at"] == funded["closes_at"], "resolved as of its deadline"
        loan = await get_json(client, f"/v1/loans/{done['loan_id']}")
        assert [(f["bid_id"], f["amount"], f["rate_bps"]) for f in loan["fills"]] == [
            (second["id"], 100_000, 1100), (cheaper["id"], 100_000, 900),
        ], "the funding set of the bids accepted before the kill"
        assert (await get_json(client, f"/v1/bids/{first['id']}"))["status"] == "outbid"
        lapsed = await until_closed(client, failed["id"], seconds=10)
        assert lapsed["status"] == "failed" and lapsed["funded_amount"] == 100_000
        assert (await get_json(client, f"/v1/bids/{lonely['id']}"))["status"] == "lost"

    for _ in range(2):  # a second crash and restart must not resolve anything again
        await service.kill()
        await service.start()
    async with service.client() as client:
        assert (await get_json(client, f"/v1/listings/{funded['id']}"))["loan_id"] == loan["id"]

    for listing_id, kind in ((funded["id"], "listing.funded"), (failed["id"], "listing.failed")):
        rows = await db.fetch(
            "SELECT type FROM events WHERE listing_id = $1::uuid AND type LIKE 'listing.%'"
            " AND type <> 'listing.opened'", listing_id,
        )
        assert [r["type"] for r in rows] == [kind], "exactly one resolution event"
    assert await db.fetchval("SELECT count(*) FROM loans WHERE listing_id = $1::uuid",
                             funded["id"]) == 1
    assert await db.fetchval("SELECT count(*) FROM loans WHERE listing_id = $1::uuid",
                             failed["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM fills WHERE loan_id = $1::uuid", loan["id"]) == 2


_SLOW_COMMIT = """
CREATE FUNCTION e2e_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER e2e_slow_commit AFTER INSERT ON bids
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION e2e_slow_commit();
"""


async def test_a_commit_still_running_when_the_process_was_killed_is_in_the_rebuilt_book(
    service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]"
) -> None:
    """Postgres finishes a COMMIT whose client died; the next process must wait for it.

    A deferred trigger makes every commit that stores a bid take 3 s, so the kill lands while
    the backend is inside COMMIT and the restart begins before that commit does.
    """
    async with service.client() as client:
        listing = await open_listing(client, amount=1_000_000)
        first = await bid_ok(client, listing["id"], 10_000, 1000, "ann")
        await db.execute(_SLOW_COMMIT)
        in_flight = asyncio.create_task(place_bid(client, listing["id"], 20_000, 900, "zed"))
        await eventually(lambda: bid_commit_running(db), 10, "the bid's COMMIT running")
        await service.kill()
        with contextlib.suppress(httpx.TransportError):
            await in_flight
    assert await db.fetchval("SELECT count(*) FROM bids WHERE lender_id = 'zed'") == 0, (
        "the commit was still running when the process died"
    )
    await service.start()
    await db.execute("DROP TRIGGER e2e_slow_commit ON bids")
    zed = await db.fetchrow("SELECT id, seq FROM bids WHERE lender_id = 'zed'")
    assert zed is not None, "the dead process's commit landed"
    async with service.client() as client:
        book = (await get_json(client, f"/v1/listings/{listing['id']}/bids"))["data"]
        assert [(b["id"], b["seq"]) for b in book] == [
            (str(zed["id"]), zed["seq"]), (first["id"], first["seq"])
        ], "the rebuilt book holds the bid committed after the process died"
        after = await bid_ok(client, listing["id"], 30_000, 800, "amy")
        assert after["seq"] > zed["seq"], "seqs continue after it, none reused"
