"""The SQL a journal batch runs, and the helpers that run it."""

import base64
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from app.audit import chain
from app.journal.entry import Entry, Row

if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]

LISTING_COLUMNS = (
    "id", "seq", "borrower_id", "amount", "term_months", "max_rate_bps", "grade", "closes_at",
    "min_funding_bps", "close_when_funded", "pricing", "opened_at", "floor_rate_bps",
    "service_fee_bps", "reserve_bps", "max_lender_share_bps", "loan_id",
    "autobid_max_share_bps", "auto_bid_count", "auto_bid_amount",
)
LOAN_COLUMNS = (
    "id", "listing_id", "borrower_id", "principal", "rate_bps", "term_months", "pricing",
    "funded_at", "service_fee", "reserve_contribution",
)
FILL_COLUMNS = ("loan_id", "bid_id", "lender_id", "seq", "amount", "rate_bps")
#: A committed event row, as `APPEND` stores it (the live hub reads rows in this layout).
EVENT_COLUMNS = ("seq", "id", "type", "listing_id", "created_at", "data", "hash")

CLOSE_LISTINGS = """
UPDATE listings AS l SET status = c.status, closed_at = c.closed_at,
    close_reason = c.close_reason, funded_amount = c.funded_amount, bid_count = c.bid_count,
    marginal_rate_bps = c.marginal_rate_bps, loan_id = c.loan_id
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::bigint[], $6::int[],
            $7::int[], $8::uuid[])
     AS c(id, status, closed_at, close_reason, funded_amount, bid_count, marginal_rate_bps, loan_id)
WHERE l.id = c.id AND l.status = 'open'
"""
SETTLE_BIDS = """
UPDATE bids AS b SET status = s.status, allocated_amount = s.allocated_amount
FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS s(id, status, allocated_amount)
WHERE b.id = s.id
"""


#: The rows of a batch of bids, in one statement: one round trip, committed on its own (no
#: BEGIN and COMMIT round trips). Each round trip waits for a turn of the busy event loop, so
#: their number, not Postgres, set the commit latency and with it the bids per second. The
#: fence is locked first; without it nothing is written and the count is 0. Bids, events,
#: ledger entries, balances and idempotency keys go as one JSON array of rows each (bytes in
#: base64), as text on the writer's libpq lane (app/journal/lane.py), and Postgres takes them apart:
#: orjson writes a batch in a few microseconds; asyncpg's array encoders (a value at a time,
#: ids as text) cost the service ~5 µs more a bid (bench/writes.py), Postgres ~2 µs less.
APPEND = """
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
           r->5, r->>6
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
    SELECT r->>0, r->>1, decode(r->>2, 'base64'), (r->>3)::int, decode(r->>4, 'base64'),
           (r->>5)::timestamptz
    FROM jsonb_array_elements($6::jsonb) AS r
    WHERE EXISTS (SELECT FROM fence)
)
SELECT count(*) FROM fence
"""

#: Standing orders' state after the commands that changed them (the last one per order).
STORE_STANDING_ORDERS = """
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


#: The audit chain's head: the newest event's (seq, hash).
Head = tuple[int, str]

#: A server session: its pid and when it started (epoch µs). A pid alone may name another
#: session once this one has ended (after a restart, a container's Postgres hands out the
#: same low pids again): ending that one could end the fence's, or a standby's.
Session = tuple[int, int]
#: A session's start as `Session` holds it (on `pg_stat_activity`).
BACKEND_START = "(extract(epoch FROM backend_start) * 1000000)::bigint"
#: The session running it.
SESSION = f"SELECT pid, {BACKEND_START} FROM pg_stat_activity WHERE pid = pg_backend_pid()"


async def event_head(conn: "Connection") -> Head:
    row = await conn.fetchrow("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
    if row is None:
        return 0, chain.GENESIS
    if row["hash"] is None:  # the start chains older events first (app/audit/service.py)
        raise RuntimeError(f"event {row['seq']} has no audit hash: run the backfill first")
    return int(row["seq"]), str(row["hash"])


async def copy_rows(
    conn: "Connection", table: str, columns: tuple[str, ...], rows: list[Row]
) -> None:
    if rows:
        # COPY ignores a record's extra fields: a column missing here would be lost silently.
        if len(rows[0]) != len(columns):
            raise ValueError(f"{table}: {len(rows[0])} values for the columns {columns}")
        await conn.copy_records_to_table(table, records=rows, columns=columns)


async def session(conn: "Connection") -> Session:
    row = await conn.fetchrow(SESSION)
    assert row is not None  # a session sees itself
    return int(row[0]), int(row[1])


def chained(head: Head, events: list[Row]) -> tuple[list[Row], Head]:
    """`events` numbered and hashed after `head`, and the head after them."""
    rows, seq, last = chain.chain_rows(*head, events)
    return rows, (seq, last)


def append_rows(e: Entry, events: list[Row]) -> list[list[Row]]:
    """`APPEND`'s row arguments after the epoch, each a list of JSON arrays: bids, `events`
    (numbered and chained), ledger entries, the last balance per account, idempotency keys
    (their bytes in base64)."""
    latest = {row[0]: row for row in e.balances}  # one row per account per statement
    keys = [(scope, key, _b64(digest), status, _b64(body), at)
            for scope, key, digest, status, body, at in e.idempotency]
    return [e.bids, events, e.ledger, list(latest.values()), keys]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def columns(rows: list[Row], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]
