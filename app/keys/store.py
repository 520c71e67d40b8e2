"""SQL for API keys, found by the SHA-256 hash of the key; the key itself is never stored."""

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
from asyncpg import Record

if TYPE_CHECKING:
    from app.store import Connection

_COLUMNS = "id, seq, role, subject, prefix, created_at, last_used_at, expires_at, revoked_at"


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def active(self, key_hash: bytes) -> Record | None:
        """The key with this hash, unless it is revoked or expired (by Postgres's clock)."""
        return await self.pool.fetchrow(
            """SELECT id, role, subject, expires_at FROM api_keys
               WHERE key_hash = $1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > now())""",
            key_hash,
        )

    async def insert(
        self,
        key_id: UUID,
        key_hash: bytes,
        role: str,
        subject: str,
        prefix: str,
        created_at: datetime,
        expires_at: datetime | None,
        conn: "Connection | None" = None,
    ) -> None:
        await (self.pool if conn is None else conn).execute(
            """INSERT INTO api_keys (id, key_hash, role, subject, prefix, created_at, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            key_id, key_hash, role, subject, prefix, created_at, expires_at,
        )

    async def page(self, subject: str | None, before_seq: int | None, limit: int) -> list[Record]:
        """Newest first; `before_seq` is the cursor."""
        return await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM api_keys
                WHERE ($1::text IS NULL OR subject = $1) AND ($2::bigint IS NULL OR seq < $2)
                ORDER BY seq DESC LIMIT $3""",
            subject, before_seq, limit,
        )

    async def revoke(self, key_id: UUID, at: datetime) -> bytes | None:
        """Revoke (keeping the first revocation time); the key's hash, or None if unknown."""
        found: bytes | None = await self.pool.fetchval(
            """UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1
               RETURNING key_hash""",
            key_id, at,
        )
        return found

    async def touch(self, key_ids: list[UUID], at: datetime) -> list[bytes]:
        """Record use of these keys; returns the hashes of those among them now revoked."""
        rows = await self.pool.fetch(
            """UPDATE api_keys SET last_used_at = $2 WHERE id = ANY($1::uuid[])
               RETURNING key_hash, revoked_at IS NOT NULL AS revoked""",
            key_ids, at,
        )
        return [bytes(r["key_hash"]) for r in rows if r["revoked"]]
