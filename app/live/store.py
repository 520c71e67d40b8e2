"""Reads the live view needs from Postgres: where the event log ends, and pages of it."""

from uuid import UUID

import asyncpg
from asyncpg import Record


class LiveStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def last_event_seq(self) -> int:
        return int(await self.pool.fetchval("SELECT coalesce(max(seq), 0) FROM events"))

    async def events_after(
        self, after: int, upto: int | None, listing_id: UUID | None, limit: int
    ) -> list[Record]:
        """Events with `after < seq <= upto` (no upper bound when None), of one listing or all,
        in seq order. A listing's page walks the seq index and filters: events has no index on
        listing_id yet."""
        return await self.pool.fetch(
            """SELECT * FROM events
               WHERE seq > $1 AND ($2::bigint IS NULL OR seq <= $2)
                 AND ($3::uuid IS NULL OR listing_id = $3)
               ORDER BY seq LIMIT $4""",
            after, upto, listing_id, limit,
        )
