"""SQL for webhook endpoints, deliveries and attempts."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
from asyncpg import Record

if TYPE_CHECKING:
    from app.store import Connection

# The cursor is a scalar subquery, so the events are an index range from it: as a join, the
# planner walked the whole table from seq 1 every round (O(events) per commit).
_FAN_OUT = """
WITH cursor AS (SELECT last_event_seq FROM webhook_fanout WHERE id = 1 FOR UPDATE),
batch AS (
    SELECT e.id, e.seq, e.type FROM events e
    WHERE e.seq > (SELECT last_event_seq FROM cursor) ORDER BY e.seq LIMIT $1
),
inserted AS (
    INSERT INTO webhook_deliveries
        (id, event_id, endpoint_id, event_seq, next_attempt_at, created_at)
    SELECT gen_random_uuid(), b.id, w.id, b.seq, now(), now()
    FROM batch b JOIN webhook_endpoints w ON w.status = 'enabled' AND b.type = ANY(w.event_types)
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING 1
)
UPDATE webhook_fanout SET last_event_seq = coalesce((SELECT max(seq) FROM batch), last_event_seq)
WHERE id = 1
RETURNING (SELECT count(*) FROM batch) AS events, (SELECT count(*) FROM inserted) AS deliveries,
    EXISTS (SELECT FROM webhook_endpoints WHERE status = 'enabled') AS enabled
"""

# With no endpoint enabled, a fan-out creates nothing and only moves the cursor: this moves it
# to the newest event at once. Run before an endpoint is added (the dispatcher skips the
# fan-outs of such events, see Dispatcher._round), so the new endpoint gets the events
# committed from then on, as it would if every fan-out had run.
_SKIP_UNSUBSCRIBED = """
UPDATE webhook_fanout
SET last_event_seq = greatest(last_event_seq, (SELECT coalesce(max(seq), 0) FROM events))
WHERE id = 1 AND NOT EXISTS (SELECT FROM webhook_endpoints WHERE status = 'enabled')
"""

# Each enabled endpoint's due deliveries in event order, up to its free slots, from the
# (endpoint_id, next_attempt_at, event_seq) index: the cost is what is claimed, not the backlog.
_CLAIM = """
WITH busy AS (SELECT * FROM unnest($1::uuid[], $2::int[]) AS b(endpoint_id, n)),
due AS (
    SELECT d.id
    FROM webhook_endpoints w
    LEFT JOIN busy ON busy.endpoint_id = w.id
    CROSS JOIN LATERAL (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.endpoint_id = w.id AND d.status = 'pending' AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at, d.event_seq
        LIMIT greatest($3 - coalesce(busy.n, 0), 0)
        FOR UPDATE OF d SKIP LOCKED
    ) d
    WHERE w.status = 'enabled'
    LIMIT $4
)
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $5)
FROM due, webhook_endpoints w, events e
WHERE d.id = due.id AND w.id = d.endpoint_id AND e.id = d.event_id
RETURNING d.id, d.endpoint_id, d.attempts, w.url, w.secret_sealed,
          e.id AS event_id, e.seq, e.type, e.created_at AS event_created_at, e.data, e.hash
"""

# Outcomes of many attempts in one statement; a delivery settled meanwhile (its endpoint was
# deleted) keeps its status.
_RECORD = """
WITH o AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::int[], $5::text[],
                         $6::text[], $7::timestamptz[])
        AS o(delivery_id, at, status_code, latency_ms, error, outcome, next_at)
),
logged AS (
    INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error)
    SELECT delivery_id, at, status_code, latency_ms, error FROM o
)
UPDATE webhook_deliveries d SET attempts = d.attempts + 1, status = o.outcome,
    last_error = o.error, next_attempt_at = coalesce(o.next_at, d.next_attempt_at),
    delivered_at = CASE WHEN o.outcome = 'delivered' THEN o.at END
FROM o WHERE d.id = o.delivery_id AND d.status = 'pending'
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: UUID
    endpoint_id: UUID
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    outcome: str
    next_attempt_at: datetime | None


_ATTEMPT_FIELDS = [f.name for f in fields(Attempt) if f.name != "endpoint_id"]


class WebhookStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def fan_out(self, batch: int) -> tuple[int, int, bool]:
        """Create deliveries for events past the cursor: (events read, deliveries created,
        whether any endpoint is enabled)."""
        row = await self.pool.fetchrow(_FAN_OUT, batch)
        if row is None:
            return 0, 0, True
        return int(row["events"]), int(row["deliveries"]), bool(row["enabled"])

    async def claim(
        self, busy: dict[UUID, int], per_endpoint: int, limit: int, lease_s: float
    ) -> list[Record]:
        """Due deliveries, leased: up to `per_endpoint` in flight per endpoint counting the
        `busy` ones, `limit` in all."""
        return await self.pool.fetch(
            _CLAIM, list(busy), list(busy.values()), per_endpoint, limit, lease_s
        )

    async def record_attempts(self, attempts: list[Attempt]) -> None:
        columns = [[getattr(a, f) for a in attempts] for f in _ATTEMPT_FIELDS]
        await self.pool.execute(_RECORD, *columns)

    async def disable_endpoint(self, endpoint_id: UUID, reason: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $2
                   WHERE id = $1 AND status = 'enabled'""",
                endpoint_id, reason,
            )
            await conn.execute(
                """UPDATE webhook_deliveries SET status = 'cancelled'
                   WHERE endpoint_id = $1 AND status = 'pending'""",
                endpoint_id,
            )

    # --- admin ------------------------------------------------------------------------------

    async def create_endpoint(
        self, endpoint_id: UUID, url: str, event_types: list[str], description: str,
        secret_sealed: str, at: datetime, conn: "Connection | None" = None,
    ) -> Record:
        if conn is None:
            async with self.pool.acquire() as own, own.transaction():
                return await self.create_endpoint(
                    endpoint_id, url, event_types, description, secret_sealed, at, own
                )
        await conn.execute(_SKIP_UNSUBSCRIBED)
        row = await conn.fetchrow(
            """INSERT INTO webhook_endpoints
                   (id, url, event_types, description, secret_sealed, created_at)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
            endpoint_id, url, event_types, description, secret_sealed, at,
        )
        assert row is not None
        return row

    async def endpoints(self) -> list[Record]:
        return await self.pool.fetch(
            "SELECT * FROM webhook_endpoints WHERE status <> 'deleted' ORDER BY created_at"
        )

    async def endpoint(self, endpoint_id: UUID) -> Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM webhook_endpoints WHERE id = $1 AND status <> 'deleted'", endpoint_id
        )

    async def delete_endpoint(self, endpoint_id: UUID) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE webhook_endpoints SET status = 'deleted'
                   WHERE id = $1 AND status <> 'deleted'""",
                endpoint_id,
            )
            await conn.execute(
                """UPDATE webhook_deliveries SET status = 'cancelled'
                   WHERE endpoint_id = $1 AND status = 'pending'""",
                endpoint_id,
            )
        return status == "UPDATE 1"

    async def deliveries(self, endpoint_id: UUID, limit: int) -> list[Record]:
        return await self.pool.fetch(
            """SELECT d.*, e.type, e.seq AS event_seq,
                      coalesce(json_agg(json_build_object(
                          'attempted_at', a.attempted_at, 'status_code', a.status_code,
                          'latency_ms', a.latency_ms, 'error', a.error) ORDER BY a.id)
                        FILTER (WHERE a.id IS NOT NULL), '[]')::text AS attempts_log
               FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
               LEFT JOIN webhook_attempts a ON a.delivery_id = d.id
               WHERE d.endpoint_id = $1
               GROUP BY d.id, e.type, e.seq
               ORDER BY e.seq DESC LIMIT $2""",
            endpoint_id,
            limit,
        )

    async def redeliver(self, event_id: UUID, conn: "Connection | None" = None) -> list[Record]:
        """Queue the event again for every enabled endpoint subscribed to its type."""
        return await (self.pool if conn is None else conn).fetch(
            """INSERT INTO webhook_deliveries
                   (id, event_id, endpoint_id, event_seq, next_attempt_at, created_at)
               SELECT gen_random_uuid(), e.id, w.id, e.seq, now(), now()
               FROM events e JOIN webhook_endpoints w
                 ON w.status = 'enabled' AND e.type = ANY(w.event_types)
               WHERE e.id = $1
               ON CONFLICT (event_id, endpoint_id) DO UPDATE
                 SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
               RETURNING id, endpoint_id, status""",
            event_id,
        )

    # --- secrets at rest --------------------------------------------------------------------

    async def reseal_secrets(
        self, reseal: Callable[[str | None, str | None], str | None]
    ) -> int:
        """Rewrite each endpoint's sealed secret as `reseal(clear, sealed)` returns it (None:
        leave the row), in one transaction; clear-text secrets are emptied. Returns rows
        changed."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, secret, secret_sealed FROM webhook_endpoints ORDER BY id FOR UPDATE"
            )
            changed = [(r["id"], reseal(r["secret"], r["secret_sealed"])) for r in rows]
            changed = [(i, s) for i, s in changed if s is not None]
            await conn.executemany(
                "UPDATE webhook_endpoints SET secret_sealed = $2, secret = NULL WHERE id = $1",
                changed,
            )
        return len(changed)

    # --- retention --------------------------------------------------------------------------

    async def delete_settled_before(self, cutoff: datetime, batch: int) -> int:
        """Delete one small batch of old attempts, else of old settled deliveries whose
        attempts are gone; returns rows deleted (0: nothing older is left). Events stay."""
        deleted = await self._count(self.pool.execute(
            """DELETE FROM webhook_attempts WHERE id IN (
                   SELECT id FROM webhook_attempts WHERE attempted_at < $1 LIMIT $2)""",
            cutoff, batch,
        ))
        if deleted:
            return deleted
        return await self._count(self.pool.execute(
            """DELETE FROM webhook_deliveries WHERE id IN (
                   SELECT d.id FROM webhook_deliveries d
                   WHERE d.status <> 'pending' AND d.created_at < $1
                     AND NOT EXISTS (SELECT 1 FROM webhook_attempts a WHERE a.delivery_id = d.id)
                   LIMIT $2)""",
            cutoff, batch,
        ))

    @staticmethod
    async def _count(status: Awaitable[str]) -> int:
        return int((await status).split()[-1])
