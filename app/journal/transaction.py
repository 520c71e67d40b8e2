"""The journal's asyncpg path: a batch that opens or resolves listings, books loans or changes
standing orders, in one transaction; and any batch while the lane is off or cannot open.

It keeps one pooled connection while it works: no acquire, and no reset query on a release,
per batch. A batch that only appends is one statement, committed on its own.
"""

from typing import TYPE_CHECKING

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from app.fence.fence import Fence
from app.journal import statements as sql
from app.journal.entry import Entry

if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]


class ResolvedTwice(Exception):
    """A listing was already closed in Postgres: a bug, the batch is rolled back."""


class PoolPath:
    def __init__(self, pool: asyncpg.Pool, fence: Fence, abandoned: set[sql.Session]) -> None:
        self._pool = pool
        self._fence = fence
        self._abandoned = abandoned
        self._conn: Connection | None = None
        self._session: sql.Session | None = None

    async def write(self, e: Entry, head: sql.Head | None) -> sql.Head:
        """Store `e` and return the audit chain's head after it; `head` None: read it from
        Postgres first. Raises if `e` is not durable: its session is then ended, and added to
        `abandoned` for the rebuild to wait for (see `_abandon`)."""
        conn = await self._connection()
        try:
            if e.appends_only():
                return await self._append(conn, e, head)
            async with conn.transaction():
                await self._fence.check(conn)  # first: a takeover waits for this transaction
                await sql.copy_rows(conn, "listings", sql.LISTING_COLUMNS, e.listings)
                if e.standing_orders:  # before the bids: an auto bid names its order
                    latest = {row[0]: row for row in e.standing_orders}
                    await conn.execute(
                        sql.STORE_STANDING_ORDERS, *sql.columns(list(latest.values()), 16)
                    )
                head = await self._append(conn, e, head)
                await sql.copy_rows(conn, "loans", sql.LOAN_COLUMNS, e.loans)
                await sql.copy_rows(conn, "fills", sql.FILL_COLUMNS, e.fills)
                if e.settled_bids:
                    await conn.execute(sql.SETTLE_BIDS, *sql.columns(e.settled_bids, 3))
                if e.closes:
                    status = await conn.execute(sql.CLOSE_LISTINGS, *sql.columns(e.closes, 8))
                    if status != f"UPDATE {len(e.closes)}":
                        raise ResolvedTwice(f"{status} for {len(e.closes)} closes")
            return head
        except BaseException:
            self._abandon()
            raise

    async def release(self) -> None:
        """Give the connection back (the pool closes only once it has it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)

    async def _append(self, conn: "Connection", e: Entry, head: sql.Head | None) -> sql.Head:
        """Bids, events (numbered and chained here), ledger entries, balances, idempotency."""
        if head is None:
            head = await sql.event_head(conn)
        events, after = sql.chained(head, e.events)
        found = await conn.fetchval(sql.APPEND, self._fence.epoch, *sql.append_rows(e, events))
        self._fence.confirm(bool(found))
        e.events = events
        return after

    async def _connection(self) -> "Connection":
        if self._conn is None:
            conn = await self._pool.acquire()
            try:
                self._session = await sql.session(conn)
            except BaseException:
                await self._pool.release(conn)
                raise
            self._conn = conn
        return self._conn

    def _abandon(self) -> None:
        """Close the session of a failed batch, whose outcome may be unknown: asyncpg's command
        timeout sends a cancel, which a backend that has not read the statement yet ignores (a
        hung session, a network holding it back); it runs the statement once it reads, and may
        commit after the books were rebuilt without it. So the rebuild ends the session first."""
        conn, self._conn = self._conn, None
        assert conn is not None and self._session is not None
        self._abandoned.add(self._session)
        conn.terminate()  # no waiting for the cancel's answer, which a hung backend never sends
