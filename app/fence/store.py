"""SQL for the writer fence: the advisory lock, the epoch row, the lease, evicting a holder."""

from typing import TYPE_CHECKING

import asyncpg
from asyncpg.pool import PoolConnectionProxy

if TYPE_CHECKING:
    Conn = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

#: Session-level advisory lock held by the writer's lock connection (7262001 is the migrator's).
LOCK_KEY = 7262006

CHECK = "SELECT true FROM writer_fence WHERE epoch = $1 FOR SHARE"

_TAKE_OVER = """
WITH fence AS (
    UPDATE writer_fence SET epoch = epoch + 1, holder = $1, acquired_at = clock_timestamp()
    RETURNING epoch
)
UPDATE writer_lease SET epoch = fence.epoch, holder = $1, renewed_at = clock_timestamp()
FROM fence RETURNING fence.epoch
"""

_EVICT = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
"""


def application_name(instance: str) -> str:
    """How an instance names its Postgres sessions, so a successor can find and end them."""
    return f"loan-auction {instance}"


async def try_lock(conn: "Conn") -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY))


async def take_over(conn: "Conn", instance: str, wait_s: float) -> int:
    """Bump the epoch. Waits at most `wait_s` for transactions still holding the old epoch
    (raises asyncpg.LockNotAvailableError after that)."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {max(1, int(wait_s * 1000))}")
        epoch = await conn.fetchval(_TAKE_OVER, instance)
    return int(epoch)


async def renew(conn: "Conn", epoch: int, timeout: float) -> bool:
    """Renew the lease; False when the epoch is no longer ours."""
    status = await conn.execute(
        "UPDATE writer_lease SET renewed_at = clock_timestamp() WHERE epoch = $1",
        epoch, timeout=timeout,
    )
    return bool(status == "UPDATE 1")


async def lease(conn: "Conn") -> tuple[str | None, float]:
    """The lease holder and how many seconds ago it last renewed (server clock)."""
    row = await conn.fetchrow(
        "SELECT holder, extract(epoch FROM clock_timestamp() - renewed_at)::float8 AS age"
        " FROM writer_lease"
    )
    assert row is not None
    return row["holder"], float(row["age"])


async def holder(conn: "Conn") -> str | None:
    found: str | None = await conn.fetchval("SELECT holder FROM writer_fence")
    return found


async def evict(conn: "Conn", instance: str) -> int:
    """End every session of `instance` on this database: its lock, its open transactions."""
    return int(await conn.fetchval(_EVICT, application_name(instance)))
