"""The writer fence against a real Postgres: who may commit, and when a standby takes over.

Each "instance" here is a Fence plus a connection named as that instance names its sessions,
standing for its pool. Pausing an instance is simply not running its code.
"""

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from app.fence import store
from app.fence.fence import Fence, FenceLost, Timings
from app.fence.role import Role

FAST = Timings(heartbeat_s=0.05, lease_s=0.5, poll_s=0.02, takeover_wait_s=0.3,
               connect_timeout_s=5.0)


@dataclass
class Instance:
    fence: Fence
    conn: "asyncpg.Connection[asyncpg.Record]"  # a session of its pool

    @property
    def role(self) -> Role:
        return self.fence.role


@contextlib.asynccontextmanager
async def instance(database_url: str, name: str, timings: Timings = FAST
                   ) -> AsyncIterator[Instance]:
    fence = Fence(database_url, name, timings, Role())
    conn = await asyncpg.connect(
        database_url, server_settings={"application_name": store.application_name(name)}
    )
    try:
        yield Instance(fence, conn)
    finally:
        await fence.release()
        if not conn.is_closed():
            await conn.close()


async def _write(conn: "asyncpg.Connection[asyncpg.Record]", fence: Fence, key: str) -> None:
    async with conn.transaction():
        await fence.check(conn)
        await _insert(conn, key)


async def _insert(conn: "asyncpg.Connection[asyncpg.Record]", key: str) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, key_hash, role, subject, created_at)"
        " VALUES (gen_random_uuid(), $1, 'lender', $2, now())", key.encode(), key,
    )


async def _stored(database_url: str, key: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM api_keys WHERE subject = $1", key))
    finally:
        await conn.close()


async def test_the_first_instance_takes_the_fence_and_its_writes_commit(database_url: str) -> None:
    async with instance(database_url, "a") as a:
        await asyncio.wait_for(a.fence.acquire(), 10)
        assert a.fence.epoch == 1
        await _write(a.conn, a.fence, "by-a")
    assert await _stored(database_url, "by-a")


async def test_a_transaction_the_old_writer_checks_after_a_takeover_rolls_back(
    database_url: str,
) -> None:
    async with instance(database_url, "a") as a, instance(database_url, "b") as b:
        await a.fence.acquire()
        tx = a.conn.transaction()
        await tx.start()
        await _insert(a.conn, "late")  # begun while a was the writer, not yet checked
        await a.fence.release()  # a's lock session dies (a paused, its socket cut)
        a.fence.epoch = 1  # ...but a, paused, still believes it holds epoch 1
        await asyncio.wait_for(b.fence.acquire(), 10)
        assert b.fence.epoch == 2
        with pytest.raises(FenceLost):
            await a.fence.check(a.conn)
        await tx.rollback()
        assert not a.fence.held, "a check that fails steps the instance down"
        await _write(b.conn, b.fence, "by-b")
    assert not await _stored(database_url, "late")
    assert await _stored(database_url, "by-b")


async def test_a_takeover_waits_for_a_commit_in_flight_instead_of_breaking_it(
    database_url: str,
) -> None:
    patient = dataclasses.replace(FAST, takeover_wait_s=10.0)
    async with instance(database_url, "a") as a, instance(database_url, "b", patient) as b:
        await a.fence.acquire()
        tx = a.conn.transaction()
        await tx.start()
        await a.fence.check(a.conn)  # holds the epoch row FOR SHARE
        await _insert(a.conn, "in-flight")
        await a.fence.release()
        taking_over = asyncio.create_task(b.fence.acquire())
        await asyncio.sleep(0.5)
        assert not taking_over.done(), "the bump waits for the old writer's transaction"
        await tx.commit()  # committed before the bump: the new writer will read it
        await asyncio.wait_for(taking_over, 10)
    assert await _stored(database_url, "in-flight")


#: How a COMMIT on a session that was ended shows up (asyncpg names a close racing the COMMIT
#: an internal client error).
CONNECTION_ENDED = (
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InternalClientError,
    ConnectionError,
)


async def test_an_old_transaction_still_open_after_the_wait_is_ended_and_never_commits(
    database_url: str,
) -> None:
    async with instance(database_url, "a") as a, instance(database_url, "b") as b:
        await a.fence.acquire()
        tx = a.conn.transaction()
        await tx.start()
        await a.fence.check(a.conn)
        await _insert(a.conn, "stalled")
        await a.fence.release()  # a's lock is gone, its transaction stays open: a is paused
        await asyncio.wait_for(b.fence.acquire(), 10)  # waits takeover_wait_s, then evicts a
        with pytest.raises(CONNECTION_ENDED):
            await tx.commit()
    assert not await _stored(database_url, "stalled")


async def test_a_standby_ends_the_sessions_of_a_writer_whose_lease_expired(
    database_url: str,
) -> None:
    async with instance(database_url, "a") as a, instance(database_url, "b") as b:
        await a.fence.acquire()  # a holds the lock but never renews: it is stopped
        tx = a.conn.transaction()
        await tx.start()
        await a.fence.check(a.conn)
        await _insert(a.conn, "paused")
        await asyncio.wait_for(b.fence.acquire(), 10)
        assert b.fence.epoch == 2
        with pytest.raises(CONNECTION_ENDED):
            await tx.commit()
        with pytest.raises(FenceLost):  # a wakes up: its heartbeat finds its lock session gone
            await asyncio.wait_for(a.fence.hold(), 5)
        assert a.role.state == "database_unavailable"
    assert not await _stored(database_url, "paused")


async def test_a_standby_leaves_a_writer_that_renews_its_lease_alone(database_url: str) -> None:
    async with instance(database_url, "a") as a, instance(database_url, "b") as b:
        await a.fence.acquire()
        heartbeat = asyncio.create_task(a.fence.hold())
        standby = asyncio.create_task(b.fence.acquire())
        await asyncio.sleep(FAST.lease_s * 4)
        assert not standby.done() and b.role.state == "standby"
        assert a.fence.held
        await _write(a.conn, a.fence, "still-a")
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        await a.fence.release()  # a clean stop: the standby takes over at once
        await asyncio.wait_for(standby, 5)
        assert b.fence.epoch == 2


async def test_the_heartbeat_notices_a_takeover_and_raises_fence_lost(database_url: str) -> None:
    async with instance(database_url, "a") as a:
        await a.fence.acquire()
        heartbeat = asyncio.create_task(a.fence.hold())
        assert await store.take_over(a.conn, "b", 1.0) == 2  # what another instance does
        with pytest.raises(FenceLost):
            await asyncio.wait_for(heartbeat, 5)
        assert not a.fence.held and a.role.state == "standby"


async def test_of_two_instances_contending_at_once_exactly_one_takes_the_fence(
    database_url: str,
) -> None:
    async with instance(database_url, "a") as a, instance(database_url, "b") as b:
        tasks = {name: asyncio.create_task(i.fence.acquire()) for name, i in (("a", a), ("b", b))}
        done, pending = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        winner = a if tasks["a"] in done else b
        loser = b if winner is a else a
        heartbeat = asyncio.create_task(winner.fence.hold())
        await asyncio.sleep(0.5)
        assert len(done) == 1 and not pending.pop().done()
        assert winner.fence.epoch == 1 and not loser.fence.held
        assert loser.role.state == "standby"
        for task in (heartbeat, *tasks.values()):
            task.cancel()
        await asyncio.gather(heartbeat, *tasks.values(), return_exceptions=True)
