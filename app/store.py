"""Reads from Postgres, and the few writes outside the journal (housekeeping).

Plain SQL, plain rows: the store knows tables, not rules.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg
from asyncpg import Record
from asyncpg.pool import PoolConnectionProxy

from app.journal.statements import BACKEND_START, Session

if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]


#: Each open listing's bids, one row per listing, column by column in seq order: arrays decode
#: in C with no row object per bid, and the ids come as text, the times as epoch µs.
_OPEN_BOOKS = """
SELECT b.listing_id::text AS listing_id,
       array_agg(b.id::text ORDER BY b.seq) AS bid_ids,
       array_agg(b.lender_id ORDER BY b.seq) AS lender_ids,
       array_agg(b.amount ORDER BY b.seq) AS amounts,
       array_agg(b.min_rate_bps ORDER BY b.seq) AS rates_bps,
       array_agg(b.seq ORDER BY b.seq) AS seqs,
       array_agg((extract(epoch FROM b.placed_at) * 1000000)::bigint ORDER BY b.seq) AS placed_at,
       CASE WHEN count(b.standing_order_id) > 0
            THEN array_agg(b.standing_order_id::text ORDER BY b.seq) END AS standing_order_ids
FROM bids b JOIN listings l ON l.id = b.listing_id
WHERE l.status = 'open'
GROUP BY b.listing_id
"""
#: Books per round trip (see `_read_ahead`): the memory they pass through is reused rather
#: than held for the whole journal. Small enough that a fetch sent ahead fits in the socket's
#: buffers while the last one replays (at 500 Postgres waited on the socket: no overlap).
_BOOKS_PER_FETCH = 200
#: What recovery needs of each open listing, in seq order; ids as text and times as epoch µs,
#: as the books come (no UUID or datetime object per listing to convert back).
_OPEN_LISTINGS = """
SELECT id::text AS id, seq, borrower_id, amount, term_months, max_rate_bps, grade,
       (extract(epoch FROM closes_at) * 1000000)::bigint AS closes_at, min_funding_bps,
       close_when_funded, pricing, (extract(epoch FROM opened_at) * 1000000)::bigint AS opened_at,
       floor_rate_bps, service_fee_bps, reserve_bps, max_lender_share_bps, autobid_max_share_bps,
       loan_id::text AS loan_id
FROM listings WHERE status = 'open' ORDER BY seq
"""


#: `pg_stat_activity`'s rows of sessions given as pids ($1) and starts ($2): a pid alone may
#: name another session by now (see `Session`).
_OF_SESSIONS = f"""WHERE datname = current_database()
  AND (pid, {BACKEND_START}) IN (SELECT * FROM unnest($1::int[], $2::bigint[]))"""


@dataclass(frozen=True, slots=True)
class StoredMarket:
    listings: list[Record]
    #: one row per open listing with bids (see `_OPEN_BOOKS`), read as it is iterated
    books: AsyncIterable[Record]
    accounts: list[Record]
    funded: list[Record]
    last_entry_id: int
    #: standing orders alive or with live bids, and the last queue ticket ever handed out
    standing_orders: list[Record]
    last_ticket: int


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    # --- listings and bids ------------------------------------------------------------------

    async def listing(self, listing_id: UUID) -> Record | None:
        return await self.pool.fetchrow("SELECT * FROM listings WHERE id = $1", listing_id)

    async def listings(
        self, status: str | None, grade: str | None, before_seq: int | None, limit: int
    ) -> list[Record]:
        return await self.pool.fetch(
            """SELECT * FROM listings
               WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR grade = $2)
                 AND ($3::bigint IS NULL OR seq < $3)
               ORDER BY seq DESC LIMIT $4""",
            status, grade, before_seq, limit,
        )

    async def listing_bids(self, listing_id: UUID) -> list[Record]:
        """A closed listing's bids in priority order."""
        return await self.pool.fetch(
            "SELECT * FROM bids WHERE listing_id = $1 ORDER BY min_rate_bps, seq", listing_id
        )

    async def bid(self, bid_id: UUID) -> Record | None:
        return await self.pool.fetchrow("SELECT * FROM bids WHERE id = $1", bid_id)

    async def lender_bids(self, lender_id: str, before_seq: int | None, limit: int) -> list[Record]:
        return await self.pool.fetch(
            """SELECT * FROM bids WHERE lender_id = $1 AND ($2::bigint IS NULL OR seq < $2)
               ORDER BY seq DESC LIMIT $3""",
            lender_id, before_seq, limit,
        )

    @contextlib.asynccontextmanager
    async def open_journal(self) -> AsyncIterator[StoredMarket]:
        """One snapshot of what recovery restores: every open listing in seq order and its bids,
        every account's balances, each borrower's funded principal, the last ledger entry. The
        books are read while the caller iterates them, inside the snapshot's transaction."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            listings = await conn.fetch(_OPEN_LISTINGS)
            accounts = await conn.fetch("SELECT id, available, reserved FROM accounts")
            funded = await conn.fetch(
                "SELECT borrower_id, sum(principal)::bigint AS principal FROM loans"
                " GROUP BY borrower_id"
            )
            last_entry = await conn.fetchval("SELECT coalesce(max(id), 0) FROM ledger_entries")
            orders = await conn.fetch(
                "SELECT * FROM standing_orders WHERE NOT deleted OR reserved > 0 ORDER BY seq"
            )
            last_ticket = await conn.fetchval(
                "SELECT coalesce(max(ticket), 0) FROM standing_orders"
            )
            books = _read_ahead(conn, _OPEN_BOOKS, _BOOKS_PER_FETCH)
            try:
                yield StoredMarket(
                    listings, books, accounts, funded, int(last_entry), orders, int(last_ticket)
                )
            finally:
                await books.aclose()

    async def max_seq(self) -> int:
        value = await self.pool.fetchval(
            "SELECT greatest((SELECT max(seq) FROM listings), (SELECT max(seq) FROM bids),"
            " (SELECT max(seq) FROM standing_orders))"
        )
        return int(value or 0)

    async def writing_transactions(self) -> list[str]:
        """Transaction ids of other sessions on this database that have written something."""
        xids: list[str] = await self.pool.fetchval(
            """SELECT coalesce(array_agg(backend_xid::text), '{}') FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_xid IS NOT NULL"""
        )
        return xids

    async def end_sessions(self, sessions: list[Session]) -> None:
        """Ask the server sessions on this database to end (`pg_terminate_backend`): their open
        transactions roll back, and a statement they have not read is never run."""
        await self.pool.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity {_OF_SESSIONS}",
            *_session_columns(sessions),
        )

    async def sessions_running(self, sessions: list[Session]) -> int:
        """How many of the server sessions still run on this database."""
        count = await self.pool.fetchval(
            f"SELECT count(*) FROM pg_stat_activity {_OF_SESSIONS}", *_session_columns(sessions)
        )
        return int(count)

    async def still_running(self, xids: list[str]) -> int:
        """How many of `xids` are still open (a transaction keeps its xid until it ends)."""
        count = await self.pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND backend_xid::text = ANY($1::text[])""",
            xids,
        )
        return int(count)

    # --- loans and events -------------------------------------------------------------------

    async def loan(self, loan_id: UUID) -> tuple[Record, list[Record]] | None:
        async with self.pool.acquire() as conn:
            loan = await conn.fetchrow("SELECT * FROM loans WHERE id = $1", loan_id)
            if loan is None:
                return None
            fills = await conn.fetch("SELECT * FROM fills WHERE loan_id = $1 ORDER BY seq", loan_id)
        return loan, fills

    async def events(self, after: int, limit: int, types: list[str] | None) -> list[Record]:
        return await self.pool.fetch(
            """SELECT * FROM events WHERE seq > $1 AND ($3::text[] IS NULL OR type = ANY($3))
               ORDER BY seq LIMIT $2""",
            after, limit, types,
        )

    async def event(self, event_id: UUID) -> Record | None:
        return await self.pool.fetchrow("SELECT * FROM events WHERE id = $1", event_id)

    # --- idempotency -----------------------------------------------------------------------

    async def idempotency_record(self, scope: str, key: str) -> Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM idempotency_keys WHERE scope = $1 AND key = $2", scope, key
        )

    async def insert_idempotency(self, conn: "Connection", row: tuple[Any, ...]) -> None:
        """A record written inside the caller's transaction (the journal writes its own)."""
        await conn.execute(
            """INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            *row,
        )

    async def delete_idempotency_before(
        self, moment: datetime, conn: "Connection | None" = None
    ) -> int:
        status = await (conn or self.pool).execute(
            "DELETE FROM idempotency_keys WHERE created_at < $1", moment
        )
        return int(status.split()[-1])


def _session_columns(sessions: list[Session]) -> tuple[list[int], list[int]]:
    return [pid for pid, _ in sessions], [started for _, started in sessions]


async def _read_ahead(
    conn: "Connection", query: str, per_fetch: int
) -> AsyncGenerator[Record, None]:
    """The rows of `query`, `per_fetch` at a time, the next fetch already sent while the caller
    goes through this one's rows: Postgres makes the next batch meanwhile, on its own core."""
    cursor = await conn.cursor(query)
    pending = asyncio.ensure_future(cursor.fetch(per_fetch))
    try:
        while True:
            rows = await pending
            if len(rows) < per_fetch:
                for row in rows:
                    yield row
                return
            pending = asyncio.ensure_future(cursor.fetch(per_fetch))
            await asyncio.sleep(0)  # the fetch goes out before the caller takes the rows
            for row in rows:
                yield row
    finally:  # left early (an error): the connection is free again once the fetch is back
        with contextlib.suppress(Exception):
            await pending
