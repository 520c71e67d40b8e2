"""Shared fixtures: a real PostgreSQL (DATABASE_URL, or embedded) and a fresh database per test."""

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

import matching
from app import database
from tests import compiled_core

TEMPLATE = "loan_auction_template"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a matching core that is not the compiled build of its current source: an
    editable install builds it beside the sources (setup.py), and Python imports the built module
    over the `.py`, so the tests would run other code (tests/compiled_core.py)."""
    problem = compiled_core.stale(Path(matching.__file__).parent)
    if problem is not None:
        raise pytest.UsageError(
            f"{problem}: run the install again (README: pip install -e '.[test]')"
        )


@pytest.fixture(scope="session")
def postgres_server_uri() -> Iterator[str]:
    """DATABASE_URL when set; otherwise an embedded server in a temporary folder."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="la-pg-") as folder:
        server = database.start_embedded(Path(folder))
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def database_uri(server_uri: str, name: str) -> str:
    """The server URI pointed at database `name` (works for socket and TCP URIs)."""
    base, _, query = server_uri.partition("?")
    root = base.rsplit("/", 1)[0]
    return f"{root}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
async def migrated_template(postgres_server_uri: str) -> str:
    """A migrated database that each test's database is copied from (fast, and clean)."""
    admin = await asyncpg.connect(postgres_server_uri)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(database_uri(postgres_server_uri, TEMPLATE))
    try:
        await database.migrate(conn)  # type: ignore[arg-type]
    finally:
        await conn.close()
    return TEMPLATE


@asynccontextmanager
async def scratch_database(
    server_uri: str, prefix: str, template: str | None = None
) -> AsyncIterator[str]:
    """A database of its own (a copy of `template`, or empty) for one test, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    copy = f" TEMPLATE {template}" if template else ""
    admin = await asyncpg.connect(server_uri)
    try:
        await admin.execute(f"CREATE DATABASE {name}{copy}")
    finally:
        await admin.close()
    try:
        yield database_uri(server_uri, name)
    finally:
        admin = await asyncpg.connect(server_uri)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture
async def database_url(postgres_server_uri: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, dropped afterwards."""
    async with scratch_database(postgres_server_uri, "t", migrated_template) as url:
        yield url


@pytest.fixture
async def empty_database_url(postgres_server_uri: str) -> AsyncIterator[str]:
    """A database with nothing in it, not even the migrations."""
    async with scratch_database(postgres_server_uri, "e") as url:
        yield url
