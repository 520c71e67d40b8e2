"""SQL for webhook endpoints, deliveries and attempts."""

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
from asyncpg import Record

if TYPE_CHECKING:
    from app.store import Connection

_FAN_OUT = """
WITH cursor AS (SELECT last_event_seq FROM webhook_fanout WHERE id = 1 FOR UPDATE),
batch AS (
    SELECT e.id, e.seq, e.type FROM events e, cursor
    WHERE e.seq > cursor.last_event_seq ORDER BY e.seq LIMIT $1
),
inserted AS (
    INSERT INTO webhook_deliveries (id, event_id, endpoint_id, next_attempt_at, created_at)
    SELECT gen_random_uuid(), b.id, w.id, now(), now()
    FROM batch b JOIN webhook_endpoints w ON w.status = 'enabled' AND b.type = ANY(w.event_types)
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING 1
)
UPDATE webhook_fanout SET last_event_seq = coalesce((SELECT max(seq) FROM batch), last_event_seq)
WHERE id = 1
RETURNING (SELECT count(*) FROM batch) AS events, (SELECT count(*) FROM inserted) AS deliveries
"""

_CLAIM = """
WITH due AS (
    SELECT DISTINCT ON (d.endpoint_id) d.id
    FROM webhook_deliveries d
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND NOT (d.endpoint_id = ANY($1::uuid[]))
    ORDER BY d.endpoint_id, d.next_attempt_at
    LIMIT $2
)
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $3)
FROM due, webhook_endpoints w, events e
WHERE d.id = due.id AND w.id = d.endpoint_id AND e.id = d.event_id
RETURNING d.id, d.endpoint_id, d.attempts, d.created_at, w.url, w.secret,
          e.id AS event_id, e.seq, e.type, e.created_at AS event_created_at, e.data
"""


class WebhookStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def fan_out(self, batch: int) -> int:
        """Create deliveries for events past the cursor; returns how many events were read."""
        row = await self.pool.fetchrow(_FAN_OUT, batch)
        return int(row["events"]) if row else 0

    async def claim(self, busy: list[UUID], limit: int, lease_s: float) -> list[Record]:
        """Due deliveries, at most one per endpoint and none for busy endpoints, leased."""
        return await self.pool.fetch(_CLAIM, busy, limit, lease_s)

    async def record_attempt(
        self, delivery_id: UUID, at: datetime, status_code: int | None, latency_ms: int,
        error: str | None, outcome: str, next_attempt_at: datetime | None,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO webhook_attempts
                   (delivery_id, attempted_at, status_code, latency_ms, error)
                   VALUES ($1, $2, $3, $4, $5)""",
                delivery_id, at, status_code, latency_ms, error,
            )
            await conn.execute(
                """UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2,
                       last_error = $3, next_attempt_at = coalesce($4, next_attempt_at),
                       delivered_at = CASE WHEN $2 = 'delivered' THEN $5::timestamptz END
                   WHERE id = $1""",
                delivery_id, outcome, error, next_attempt_at, at,
            )

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
        secret: str, at: datetime, conn: "Connection | None" = None,
    ) -> Record:
        row = await (self.pool if conn is None else conn).fetchrow(
            """INSERT INTO webhook_endpoints (id, url, event_types, description, secret, created_at)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
            endpoint_id, url, event_types, description, secret, at,
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
                   (id, event_id, endpoint_id, next_attempt_at, created_at)
               SELECT gen_random_uuid(), e.id, w.id, now(), now()
               FROM events e JOIN webhook_endpoints w
                 ON w.status = 'enabled' AND e.type = ANY(w.event_types)
               WHERE e.id = $1
               ON CONFLICT (event_id, endpoint_id) DO UPDATE
                 SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
               RETURNING id, endpoint_id, status""",
            event_id,
        )
