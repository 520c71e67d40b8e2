"""SQL for the audit chain: the head, pages in seq order, and hashes for rows from before it."""

from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg import Record

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = asyncpg.Connection[Record] | PoolConnectionProxy[Record]
else:
    Connection = Any


async def page(conn: Connection, after: int, limit: int) -> list[Record]:
    return await conn.fetch(
        "SELECT id, seq, type, created_at, data, hash FROM events WHERE seq > $1"
        " ORDER BY seq LIMIT $2",
        after, limit,
    )


async def first_unchained(conn: Connection) -> int | None:
    value = await conn.fetchval("SELECT min(seq) FROM events WHERE hash IS NULL")
    return None if value is None else int(value)


async def hash_before(conn: Connection, seq: int) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT hash FROM events WHERE seq < $1 ORDER BY seq DESC LIMIT 1", seq
    )
    return value


async def set_hashes(conn: Connection, seqs: list[int], hashes: list[str]) -> None:
    await conn.execute(
        """UPDATE events AS e SET hash = h.hash
           FROM unnest($1::bigint[], $2::text[]) AS h(seq, hash)
           WHERE e.seq = h.seq AND e.hash IS NULL""",
        seqs, hashes,
    )
