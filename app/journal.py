"""The journal writer: one task that turns what the engine decided into Postgres rows.

Group commit: every entry submitted while a transaction is in flight rides in the next one, so
a burst of bids costs one COPY and one commit, not one transaction each. Entries are written in
submission order, which is engine order, so event `seq` order is the order things happened.
A request is answered only after its entry's transaction commits.
"""

import asyncio
import logging
import operator
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from app.audit import chain
from app.fence.fence import Fence

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]

_LISTING_COLUMNS = (
    "id", "seq", "borrower_id", "amount", "term_months", "max_rate_bps", "grade", "closes_at",
    "min_funding_bps", "close_when_funded", "pricing", "opened_at", "floor_rate_bps",
    "service_fee_bps", "reserve_bps", "max_lender_share_bps", "loan_id",
    "autobid_max_share_bps", "auto_bid_count", "auto_bid_amount",
)
_LOAN_COLUMNS = (
    "id", "listing_id", "borrower_id", "principal", "rate_bps", "term_months", "pricing",
    "funded_at", "service_fee", "reserve_contribution",
)
_FILL_COLUMNS = ("loan_id", "bid_id", "lender_id", "seq", "amount", "rate_bps")
#: A committed event row, as `_APPEND` stores it (the live hub reads rows in this layout).
_EVENT_COLUMNS = ("seq", "id", "type", "listing_id", "created_at", "data", "hash")

_CLOSE_LISTINGS = """
UPDATE listings AS l SET status = c.status, closed_at = c.closed_at,
    close_reason = c.close_reason, funded_amount = c.funded_amount, bid_count = c.bid_count,
    marginal_rate_bps = c.marginal_rate_bps, loan_id = c.loan_id
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::bigint[], $6::int[],
            $7::int[], $8::uuid[])
     AS c(id, status, closed_at, close_reason, funded_amount, bid_count, marginal_rate_bps, loan_id)
WHERE l.id = c.id AND l.status = 'open'
"""
_SETTLE_BIDS = """
UPDATE bids AS b SET status = s.status, allocated_amount = s.allocated_amount
FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS s(id, status, allocated_amount)
WHERE b.id = s.id
"""


#: The rows of a batch of bids, in one statement: one round trip, committed on its own (no
#: BEGIN and COMMIT round trips). Each round trip waits for a turn of the busy event loop, so
#: their number, not Postgres, set the commit latency and with it the bids per second. The
#: fence is locked first; without it nothing is written and the count is 0. Bids, events,
#: ledger entries and balances go as one JSON array of rows each, which Postgres takes apart:
#: orjson writes a batch in a few microseconds; asyncpg's array encoders (a value at a time,
#: ids as text) cost the service ~5 µs more a bid (bench/writes.py), Postgres ~2 µs less.
_APPEND = """
WITH fence AS (SELECT true FROM writer_fence WHERE epoch = $1 FOR SHARE),
b AS (
    INSERT INTO bids (id, listing_id, lender_id, amount, min_rate_bps, seq, placed_at,
                      standing_order_id)
    SELECT (r->>0)::uuid, (r->>1)::uuid, r->>2, (r->>3)::bigint, (r->>4)::int,
           (r->>5)::bigint, (r->>6)::timestamptz, (r->>7)::uuid
    FROM jsonb_array_elements($2::jsonb) AS r
    WHERE EXISTS (SELECT FROM fence)
), e AS (
    INSERT INTO events (seq, id, type, listing_id, created_at, data, hash)
    SELECT (r->>0)::bigint, (r->>1)::uuid, r->>2, (r->>3)::uuid, (r->>4)::timestamptz,
           (r->>5)::jsonb, r->>6
    FROM jsonb_array_elements($3::jsonb) AS r
    WHERE EXISTS (SELECT FROM fence)
), l AS (
    INSERT INTO ledger_entries (id, kind, debit_account, credit_account, amount, cause_type,
                                cause_id, listing_id, bid_id, reference, created_at)
    SELECT (r->>0)::bigint, r->>1, r->>2, r->>3, (r->>4)::bigint, r->>5, (r->>6)::uuid,
           (r->>7)::uuid, (r->>8)::uuid, r->>9, (r->>10)::timestamptz
    FROM jsonb_array_elements($4::jsonb) AS r
    WHERE EXISTS (SELECT FROM fence)
), a AS (
    INSERT INTO accounts (id, available, reserved, updated_at)
    SELECT r->>0, (r->>1)::bigint, (r->>2)::bigint, (r->>3)::timestamptz
    FROM jsonb_array_elements($5::jsonb) AS r
    WHERE EXISTS (SELECT FROM fence)
    ON CONFLICT (id) DO UPDATE SET available = excluded.available,
        reserved = excluded.reserved, updated_at = excluded.updated_at
), i AS (
    INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at)
    SELECT * FROM unnest($6::text[], $7::text[], $8::bytea[], $9::int[], $10::bytea[],
                         $11::timestamptz[])
    WHERE EXISTS (SELECT FROM fence)
)
SELECT count(*) FROM fence
"""

#: Standing orders' state after the commands that changed them (the last one per order).
_STORE_STANDING_ORDERS = """
INSERT INTO standing_orders (id, seq, lender_id, grades, term_months_min, term_months_max,
    min_rate_bps, amount_per_listing, budget, active, deleted, ticket, reserved, settled,
    created_at, updated_at)
SELECT o.id, o.seq, o.lender_id, string_to_array(o.grades, ','), o.term_months_min,
    o.term_months_max, o.min_rate_bps, o.amount_per_listing, o.budget, o.active, o.deleted,
    o.ticket, o.reserved, o.settled, o.created_at, o.updated_at
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[],
            $8::bigint[], $9::bigint[], $10::bool[], $11::bool[], $12::bigint[], $13::bigint[],
            $14::bigint[], $15::timestamptz[], $16::timestamptz[])
     AS o(id, seq, lender_id, grades, term_months_min, term_months_max, min_rate_bps,
          amount_per_listing, budget, active, deleted, ticket, reserved, settled, created_at,
          updated_at)
ON CONFLICT (id) DO UPDATE SET budget = excluded.budget, active = excluded.active,
    deleted = excluded.deleted, ticket = excluded.ticket, reserved = excluded.reserved,
    settled = excluded.settled, updated_at = excluded.updated_at
"""


class ResolvedTwice(Exception):
    """A listing was already closed in Postgres: a bug, the batch is rolled back."""


@dataclass(slots=True)
class Entry:
    """Rows one action adds; several entries share a transaction."""

    listings: list[Row] = field(default_factory=list)
    bids: list[Row] = field(default_factory=list)
    loans: list[Row] = field(default_factory=list)
    fills: list[Row] = field(default_factory=list)
    closes: list[Row] = field(default_factory=list)
    settled_bids: list[Row] = field(default_factory=list)
    #: (id, type, listing_id, created_at, data) as built; the writer puts the event seq in
    #: front and the audit hash at the end when it numbers the batch, so after the commit each
    #: row is (seq, id, type, listing_id, created_at, data, hash).
    events: list[Row] = field(default_factory=list)
    ledger: list[Row] = field(default_factory=list)
    #: (account, available, reserved, at) after each action; the last one per account counts.
    balances: list[Row] = field(default_factory=list)
    #: standing orders' state after each action; the last one per order counts.
    standing_orders: list[Row] = field(default_factory=list)
    idempotency: list[Row] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def rows(self) -> int:
        return sum(map(len, _ALL_ROWS(self)))

    def appends_only(self) -> bool:
        """Only rows `_APPEND` writes: no listing opened, resolved or booked, no order changed."""
        return not (self.listings or self.loans or self.fills or self.closes
                    or self.settled_bids or self.standing_orders)

    @classmethod
    def merge(cls, entries: "Iterable[Entry]") -> "Entry":
        """One entry with every row of `entries`, in order."""
        merged = cls()
        into = _ALL_ROWS(merged)
        for entry in entries:
            for rows, more in zip(into, _ALL_ROWS(entry)):  # noqa: B905 - same class, same slots
                if more:
                    rows.extend(more)
        return merged


#: Every row list of an entry, in one C call (a bid's entry: `rows` 0.78 -> 0.38 µs, merging
#: it 0.56 -> 0.48 µs, against a getattr per slot).
_ALL_ROWS = operator.attrgetter(*Entry.__slots__)


@dataclass(frozen=True, slots=True)
class BatchStats:
    entries: int
    seconds: float


class JournalWriter:
    """Owns the write path to Postgres. `submit` is called from the event loop, in engine order."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        max_batch: int,
        max_rows: int,
        on_commit: Callable[[Entry, BatchStats], None],
        on_failure: Callable[[BaseException], Awaitable[None]],
        *,
        fence: Fence,
    ) -> None:
        self._pool = pool
        self._fence = fence
        self._closed: BaseException | None = None
        self._max_batch = max_batch
        self._max_rows = max_rows
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._pending: list[tuple[Entry, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        #: (seq, hash) of the newest event committed: the audit chain's head. Read from
        #: Postgres after a start or a failed batch.
        self._head: tuple[int, str] | None = None
        self._conn: Connection | None = None

    def submit(self, entry: Entry) -> asyncio.Future[None]:
        """Queue an entry; the future completes when it is committed (or fails)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed is not None:
            future.set_exception(self._closed)
            return future
        self._pending.append((entry, future))
        self._idle.clear()
        self._wakeup.set()
        return future

    def fail_pending(self, error: BaseException) -> None:
        """Fail everything not yet written: it was computed on state Postgres does not have."""
        pending, self._pending = self._pending, []
        for _, future in pending:
            if not future.done():
                future.set_exception(error)
        self._idle.set()

    def close(self, error: BaseException) -> None:
        """Take no more writes: fail what is queued and everything submitted from now on.
        A batch in flight finishes (or fails) on its own; `flushed` waits for it."""
        self._closed = error
        queued, self._pending = self._pending, []
        for _, future in queued:
            if not future.done():
                future.set_exception(error)
        self._wakeup.set()  # the loop finds nothing queued and marks itself idle

    async def flushed(self) -> None:
        """Wait until every submitted entry is committed or failed."""
        await self._idle.wait()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self._drop_connection()  # the pool closes only once it has it back

    async def _run(self) -> None:
        # No waiting for stragglers: the next batch goes out as soon as the last one commits.
        # A 1 ms gather here cost a third of the bid rate once a batch took one round trip (a
        # sleep on a busy loop lasts ~3.7 ms; BENCHMARKS.md, issue 14 third pass).
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._write_batch(self._take_batch())
            self._idle.set()

    def _take_batch(self) -> list[tuple[Entry, "asyncio.Future[None]"]]:
        """The oldest pending entries, up to `max_batch` of them and `max_rows` rows (but never
        fewer than one entry): a backlog of big entries commits in bounded transactions."""
        rows = taken = 0
        for entry, _ in self._pending[: self._max_batch]:
            rows += entry.rows()
            if taken and rows > self._max_rows:
                break
            taken += 1
        batch = self._pending[:taken]
        del self._pending[:taken]
        return batch

    async def _write_batch(self, batch: list[tuple[Entry, asyncio.Future[None]]]) -> None:
        merged = Entry.merge(entry for entry, _ in batch)
        started = time.perf_counter()
        try:
            await self._write(merged)
        except Exception as error:  # any failure: nothing in this batch is durable
            self._head = None
            log.error("journal batch failed", extra={"entries": len(batch), "error": repr(error)})
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            self.fail_pending(error)
            await self._on_failure(error)
            return
        self._on_commit(merged, BatchStats(len(batch), time.perf_counter() - started))
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _write(self, e: Entry) -> None:
        """A batch of bids (the common case) in one statement; anything else in a transaction
        that checks the fence first, then the same statement for the appended rows."""
        conn = await self._connection()
        try:
            if e.appends_only():
                await self._append(conn, e)
                return
            async with conn.transaction():
                await self._fence.check(conn)  # first: a takeover waits for this transaction
                await _copy(conn, "listings", _LISTING_COLUMNS, e.listings)
                if e.standing_orders:  # before the bids: an auto bid names its order
                    latest = {row[0]: row for row in e.standing_orders}
                    await conn.execute(
                        _STORE_STANDING_ORDERS, *_columns(list(latest.values()), 16)
                    )
                await self._append(conn, e)
                await _copy(conn, "loans", _LOAN_COLUMNS, e.loans)
                await _copy(conn, "fills", _FILL_COLUMNS, e.fills)
                if e.settled_bids:
                    await conn.execute(_SETTLE_BIDS, *_columns(e.settled_bids, 3))
                if e.closes:
                    status = await conn.execute(_CLOSE_LISTINGS, *_columns(e.closes, 8))
                    if status != f"UPDATE {len(e.closes)}":
                        raise ResolvedTwice(f"{status} for {len(e.closes)} closes")
        except BaseException:
            await self._drop_connection()
            raise

    async def _append(self, conn: "Connection", e: Entry) -> None:
        """Bids, events (numbered and chained here), ledger entries, balances, idempotency."""
        if self._head is None:
            self._head = await _event_head(conn)
        seq, head = self._head
        events, seq, head = chain.chain_rows(seq, head, e.events)
        latest = {row[0]: row for row in e.balances}  # one row per account per statement
        found = await conn.fetchval(
            _APPEND, self._fence.epoch, _json(e.bids), _json(events), _json(e.ledger),
            _json(list(latest.values())), *_columns(e.idempotency, 6),
        )
        self._fence.confirm(bool(found))
        e.events = events
        self._head = seq, head

    async def _connection(self) -> "Connection":
        """The writer keeps one connection while it works: no acquire, and no reset query on
        a release, per batch."""
        if self._conn is None:
            self._conn = await self._pool.acquire()
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)


async def _event_head(conn: "Connection") -> tuple[int, str]:
    row = await conn.fetchrow("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
    if row is None:
        return 0, chain.GENESIS
    if row["hash"] is None:  # the start chains older events first (app/audit/service.py)
        raise RuntimeError(f"event {row['seq']} has no audit hash: run the backfill first")
    return int(row["seq"]), str(row["hash"])


async def _copy(conn: "Connection", table: str, columns: tuple[str, ...], rows: list[Row]) -> None:
    if rows:
        # COPY ignores a record's extra fields: a column missing here would be lost silently.
        if len(rows[0]) != len(columns):
            raise ValueError(f"{table}: {len(rows[0])} values for the columns {columns}")
        await conn.copy_records_to_table(table, records=rows, columns=columns)


def _json(rows: list[Row]) -> str:
    return orjson.dumps(rows).decode()


def _columns(rows: list[Row], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]
