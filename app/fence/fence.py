"""The writer fence: one instance writes; it proves so inside every write transaction.

Three pieces, each for one failure:
- a session-level advisory lock on a dedicated connection: a writer that dies (its socket
  closes) frees it at once, so a standby polling for it takes over within a poll;
- an epoch row: the new writer bumps it; every write transaction of the writer first locks the
  row FOR SHARE where the epoch is still its own (`check`). The bump waits for those
  transactions and every later one finds no row, so no transaction of an old writer can
  commit after a takeover, however long it was paused;
- a lease renewed every heartbeat: a writer that is alive but stopped (SIGSTOP, a long GC
  pause, a network stall) keeps its lock, so a standby that sees the lease expire ends that
  writer's sessions (lock and open transactions) before it takes over.
"""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from app.fence import store
from app.fence.role import Role, State
from app.waits import event_or_timeout

if TYPE_CHECKING:
    from app.fence.store import Conn

log = logging.getLogger(__name__)

#: Errors that mean "Postgres cannot be reached now" rather than a bug.
#: How a lost or ended session shows up; asyncpg names a session ended under a running query
#: an internal client error (MagicStack/asyncpg#1069).
UNREACHABLE = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
    asyncpg.InternalClientError,
)


class FenceLost(Exception):
    """This instance is not (or no longer) the writer: its transaction must not commit."""


@dataclass(frozen=True, slots=True)
class Timings:
    heartbeat_s: float = 1.0
    lease_s: float = 5.0
    poll_s: float = 0.1
    takeover_wait_s: float = 5.0
    connect_timeout_s: float = 5.0


def new_instance_id() -> str:
    """Unique per process; short enough for Postgres' 63-byte application_name."""
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(3)}"


class Fence:
    def __init__(self, uri: str, instance: str, timings: Timings, role: Role) -> None:
        self.uri = uri
        self.instance = instance
        self.timings = timings
        self.role = role
        #: The epoch this instance holds, or None: set by `acquire`, cleared by `lose`.
        self.epoch: int | None = None
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._lost = asyncio.Event()

    @property
    def held(self) -> bool:
        return self.epoch is not None

    async def check(self, conn: "Conn") -> None:
        """Raise FenceLost unless this instance holds the fence. Run it first in every write
        transaction: the row lock it takes keeps a takeover waiting until the transaction ends."""
        epoch = self.epoch
        if epoch is None:
            raise FenceLost("this instance is not the writer")
        self.confirm(bool(await conn.fetchval(store.CHECK, epoch)))

    def confirm(self, found: bool) -> None:
        """What a write found when it locked the fence row at its epoch (`CHECK`, or the
        journal's own statement): if nothing, FenceLost, and a standby from now on."""
        if found:
            return
        if self.epoch is None:
            raise FenceLost("this instance is not the writer")
        self.lose("another instance took the fence", "standby")
        raise FenceLost("another instance took the fence")

    @contextlib.asynccontextmanager
    async def transaction(
        self, pool: asyncpg.Pool
    ) -> "AsyncIterator[PoolConnectionProxy[asyncpg.Record]]":
        """A write transaction that commits only while this instance holds the fence."""
        async with pool.acquire() as conn, conn.transaction():
            await self.check(conn)
            yield conn

    async def acquire(self) -> None:
        """Wait, as a standby, until this instance holds the fence."""
        self._lost = asyncio.Event()
        delay = self.timings.poll_s
        while True:
            try:
                conn = await self._connection()
                if await store.try_lock(conn):
                    self.epoch = await self._take_over(conn)
                    log.info("writer fence taken", extra={"epoch": self.epoch})
                    return
                self.role.set("standby")
                await self._evict_if_stale(conn)
                delay = self.timings.poll_s
            except UNREACHABLE as error:
                self.role.set("database_unavailable")
                log.warning("standby cannot reach postgres", extra={"error": repr(error)})
                await self._drop()
                delay = min(max(delay, 0.2) * 2, 2.0)
            await asyncio.sleep(delay)

    async def hold(self) -> None:
        """Renew the lease every heartbeat; raise FenceLost as soon as the fence is lost."""
        conn = self._conn
        assert conn is not None and self.epoch is not None, "acquire first"
        conn.add_termination_listener(self._on_closed)
        try:
            while True:
                await event_or_timeout(self._lost, self.timings.heartbeat_s)
                epoch = self.epoch
                if epoch is None:
                    raise FenceLost("the writer fence was lost")
                try:
                    if not await store.renew(conn, epoch, self.timings.lease_s):
                        self.lose("another instance took the fence", "standby")
                except TimeoutError:  # not proof of loss; a standby judges the lease's age
                    log.warning("lease renewal timed out")
                except UNREACHABLE as error:
                    self.lose(f"the fence connection failed: {error!r}", "database_unavailable")
        finally:
            conn.remove_termination_listener(self._on_closed)

    def lose(self, reason: str, state: State) -> None:
        """Stop being the writer now (idempotent): later `check`s fail without asking Postgres."""
        if self.epoch is None:
            return
        log.warning("writer fence lost", extra={"reason": reason, "epoch": self.epoch})
        self.epoch = None
        self.role.set(state)
        self._lost.set()

    async def release(self) -> None:
        """Let go of the fence: ending the lock's session frees the lock for a standby."""
        self.epoch = None
        await self._drop()

    # --- internals --------------------------------------------------------------------------

    async def _connection(self) -> "asyncpg.Connection[asyncpg.Record]":
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.uri,
                timeout=self.timings.connect_timeout_s,
                server_settings={"application_name": store.application_name(self.instance)},
            )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=self.timings.connect_timeout_s)
        except Exception:  # noqa: BLE001 - the session must end either way
            conn.terminate()

    async def _take_over(self, conn: "Conn") -> int:
        """Bump the epoch; an old writer's transaction still open after the wait is ended."""
        while True:
            try:
                return await store.take_over(conn, self.instance, self.timings.takeover_wait_s)
            except asyncpg.LockNotAvailableError:
                previous = await store.holder(conn)
                if previous is not None:
                    ended = await store.evict(conn, previous)
                    log.warning("ended the previous writer's open transactions", extra={
                        "holder": previous, "sessions": ended,
                    })

    async def _evict_if_stale(self, conn: "Conn") -> None:
        holder, age = await store.lease(conn)
        if holder is None or holder == self.instance or age <= self.timings.lease_s:
            return
        ended = await store.evict(conn, holder)
        if ended:
            log.warning("writer stopped renewing its lease; ended its sessions", extra={
                "holder": holder, "lease_age_s": round(age, 3), "sessions": ended,
            })

    def _on_closed(self, conn: object) -> None:
        self.lose("the connection holding the fence closed", "database_unavailable")
