"""Migrations on a database several instances start against at once."""

import asyncio

import asyncpg

from app import database


async def test_instances_migrating_an_empty_database_at_once_apply_each_migration_once(
    empty_database_url: str,
) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(database.migrate(c) for c in conns))  # type: ignore[arg-type]
        every = [path.name.removesuffix(".sql") for path in database.migration_files()]
        assert sorted(applied, key=len) == [[], [], [], every], "one migrator did it all"
        stored = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in stored] == every
    finally:
        for conn in conns:
            await conn.close()
