"""Two instances on one database, as real processes: one writer, one hot standby.

The writer dies (kill -9) or stops (SIGSTOP), the standby takes over; nothing acknowledged is
lost, nothing is resolved twice, and a writer that lost the fence never commits again.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeAlias

import asyncpg
import pytest

from app.database import migration_files
from tests.e2e.conftest import Fleet, ServiceProcess, _reports
from tests.e2e.drive import bid_commit_running, bid_ok, epoch, get_json, open_listing, place_bid
from tests.e2e.router import Router
from tests.e2e.takeover import Takeover, books_match_the_journal, burst_through_router
from tests.money import assert_conserved
from tests.waiting import eventually

Db: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
#: A paused writer is judged gone after 3 s without a heartbeat (the default is 5 s).
QUICK_LEASE = {"LOAN_AUCTION_FENCE_LEASE_S": "3", "LOAN_AUCTION_FENCE_HEARTBEAT_S": "0.5"}


@pytest.fixture
async def router(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Router]:
    running = Router(tmp_path / "nginx")
    try:
        yield running
    finally:
        running.stop()
        reports = request.node.stash.get(_reports, {})
        if any(report.failed for report in reports.values()):
            print(f"\n----- nginx error log -----\n{running.error_log()}")


@pytest.mark.slow
async def test_killing_the_writer_mid_burst_through_nginx_loses_no_acknowledged_bid(
    fleet: Fleet, router: Router, db: Db, tmp_path: Path, rng_seed: int,
) -> None:
    first, second = fleet.add("first"), fleet.add("second")
    await first.start()
    await fleet.fund(first)
    await second.start("standby")
    await router.start([first.port, second.port])
    takeover = Takeover(killed=first, standby=second)
    burst = await burst_through_router(router.base_url, takeover, rng_seed)

    assert not burst.transport_errors, f"before the kill: {burst.transport_errors[:5]}"
    assert set(burst.answers) <= {201, 409, 422, 503}, f"other answers: {burst.unexpected[:5]}"
    assert burst.answers[503] > 0, "the kill landed in the middle of the burst"
    assert takeover.ready_after_s is not None, "the standby took over"
    summary = await books_match_the_journal(second, db, burst)
    await assert_conserved(db)  # no money made or lost across the takeover
    figures = {"seed": rng_seed, **takeover.figures(), **summary,
               "answers": {str(k): v for k, v in sorted(burst.answers.items())}}
    print("takeover under load:", json.dumps(figures, indent=2))
    (tmp_path / "takeover.json").write_text(json.dumps(figures, indent=2))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["lease_expired", "lock_session_cut"])
async def test_a_paused_writer_commits_nothing_after_the_standby_took_over(
    fleet: Fleet, db: Db, how: str,
) -> None:
    """SIGSTOP lands while the writer's journal transaction is inside COMMIT (a deferred
    trigger holds that bid's COMMIT until the test opens a gate), then the standby takes over:

    - lease_expired: the standby sees the lease expire and ends the paused writer's sessions;
    - lock_session_cut: only the paused writer's lock session dies (as a cut connection would),
      so the standby gets the lock at once; its epoch bump must wait for the stalled
      transaction (which holds the epoch row FOR SHARE) and end it, or that COMMIT would land
      after the takeover once the gate opens.

    The new writer takes bids; the gate opens; SIGCONT: the stalled bid and one sent to the
    paused writer meanwhile are both refused, the old writer steps down, and the new writer's
    books are what Postgres holds."""
    new_env = QUICK_LEASE if how == "lease_expired" else {
        "LOAN_AUCTION_FENCE_LEASE_S": "600", "LOAN_AUCTION_FENCE_TAKEOVER_WAIT_S": "2",
    }
    old, new = fleet.add("old", **QUICK_LEASE), fleet.add("new", **new_env)
    old.expected_errors.append("journal batch failed")  # its stalled batch, ended by the takeover
    await old.start()
    await fleet.fund(old)
    await new.start("standby")
    async with old.client(timeout=60.0) as to_old, new.client() as to_new:
        listing = await open_listing(to_old, amount=1_000_000)
        before = [await bid_ok(to_old, listing["id"], 100_000, rate, "ann") for rate in (900, 800)]
        await db.execute(_GATED_COMMIT)
        stalled = asyncio.create_task(place_bid(to_old, listing["id"], 100_000, 700, "stalled"))
        await eventually(lambda: _held_commit(db, True), 15, "the stalled bid inside its COMMIT")
        old.pause()
        sent_while_paused = asyncio.create_task(
            place_bid(to_old, listing["id"], 100_000, 600, "queued")
        )
        if how == "lock_session_cut":
            assert await db.fetchval(_CUT_LOCK_SESSION) == 1
        await eventually(new.ready, 30, "the standby taking over")
        after = [await bid_ok(to_new, listing["id"], 100_000, rate, "bea") for rate in (500, 400)]
        await db.execute("UPDATE e2e_gate SET hold = false")
        await eventually(lambda: _held_commit(db, False), 15, "no COMMIT held any more")
        assert await _count(db, "stalled") == 0, "the paused writer's commit was ended"
        old.resume()
        for pending in (stalled, sent_while_paused):
            response = await asyncio.wait_for(pending, 30)
            assert response.status_code == 503, response.text
        await eventually(lambda: _standby(old), 15, "the old writer stepping down")
        assert await _count(db, "stalled") == 0 and await _count(db, "queued") == 0
        assert (await place_bid(to_old, listing["id"], 100_000, 300, "late")).status_code == 503
        also = await bid_ok(to_new, listing["id"], 100_000, 200, "bea")
        book = (await get_json(to_new, f"/v1/listings/{listing['id']}/bids"))["data"]
    assert {b["id"] for b in book} == {b["id"] for b in [*before, *after, also]}
    assert await db.fetchval("SELECT epoch FROM writer_fence") == 2
    await books_match_the_journal(new, db, None)
    await assert_conserved(db)
    assert "stepped down to standby" in old.log_tail()


async def test_two_instances_started_at_once_on_an_empty_database_make_one_writer(
    empty_database_url: str, fleet: Fleet,  # in this order: the instances stop first
) -> None:
    one = fleet.add("one", database_url=empty_database_url)
    two = fleet.add("two", database_url=empty_database_url)
    await asyncio.gather(one.start("either"), two.start("either"))
    states = sorted([(await one.readyz())[0], (await two.readyz())[0]])
    assert states == [200, 503], "exactly one writer"
    writer, standby = (one, two) if await one.ready() else (two, one)
    conn = await asyncpg.connect(empty_database_url)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert sorted(versions) == every_migration(), "each applied once"
        assert await conn.fetchval("SELECT epoch FROM writer_fence") == 1
    finally:
        await conn.close()
    applied = [_applied(member) for member in (one, two)]
    assert sorted(applied, key=len) == [[], every_migration()], (
        "one instance ran the migrations, the other found them done"
    )
    await fleet.fund(writer)
    async with writer.client() as client, standby.client() as refused:
        listing = await open_listing(client)
        await bid_ok(client, listing["id"], 10_000, 900)
        assert (await place_bid(refused, listing["id"], 10_000, 800)).status_code == 503


async def test_after_both_instances_are_killed_one_restarted_recovers_as_usual(
    fleet: Fleet, db: Db,
) -> None:
    first, second = fleet.add("first"), fleet.add("second")
    await first.start()
    await fleet.fund(first)
    await second.start("standby")
    async with first.client() as client:
        lapsing = await open_listing(client, amount=300_000, duration_s=2)
        open_one = await open_listing(client, amount=1_000_000)
        acked = [
            await bid_ok(client, lapsing["id"], 200_000, 900, "ann"),
            await bid_ok(client, lapsing["id"], 100_000, 800, "bob"),
            await bid_ok(client, open_one["id"], 50_000, 700, "cat"),
        ]
    await first.kill()
    await second.kill()
    await asyncio.sleep(max(0.0, 2.5 - (time.time() - epoch(lapsing["opened_at"]))))
    await second.start()
    async with second.client() as client:
        for bid in acked:
            got = await get_json(client, f"/v1/bids/{bid['id']}")
            assert (got["seq"], got["amount"]) == (bid["seq"], bid["amount"])

        async def funded() -> dict[str, object] | None:
            found = await get_json(client, f"/v1/listings/{lapsing['id']}")
            return found if found["status"] != "open" else None

        resolved = await eventually(funded, 10, "the lapsed listing resolved")
        assert resolved["status"] == "funded"
        book = (await get_json(client, f"/v1/listings/{open_one['id']}/bids"))["data"]
        assert [b["id"] for b in book] == [acked[2]["id"]]
    assert await db.fetchval(
        "SELECT count(*) FROM events WHERE listing_id = $1::uuid AND type = 'listing.funded'",
        lapsing["id"],
    ) == 1
    await books_match_the_journal(second, db, None)


_GATED_COMMIT = """
CREATE TABLE e2e_gate (hold boolean NOT NULL);
INSERT INTO e2e_gate VALUES (true);
CREATE FUNCTION e2e_gated_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WHILE (SELECT hold FROM e2e_gate) LOOP PERFORM pg_sleep(0.02); END LOOP;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER e2e_gated_commit AFTER INSERT ON bids
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.lender_id = 'stalled')
    EXECUTE FUNCTION e2e_gated_commit();
"""
#: End the session holding the writer's advisory lock (key 7262006), and only that one.
_CUT_LOCK_SESSION = """
SELECT count(pg_terminate_backend(pid)) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid = 7262006
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def _held_commit(db: Db, held: bool) -> bool:
    """True once some COMMIT is (held) or no COMMIT is any longer (not held) at the gate."""
    return await bid_commit_running(db) == held


async def _standby(service: ServiceProcess) -> bool:
    status, body = await service.readyz()
    return status == 503 and body["code"] == "standby"


async def _count(db: Db, lender: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM bids WHERE lender_id = $1", lender))


def _applied(member: ServiceProcess) -> list[str]:
    for line in member.log_path.read_text().splitlines():
        if '"msg":"migrations"' in line:
            found: list[str] = json.loads(line)["applied"]
            return found
    raise AssertionError(f"no migrations line in {member.log_path}")


def every_migration() -> list[str]:
    return [p.name.removesuffix(".sql") for p in migration_files()]
