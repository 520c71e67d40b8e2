"""`loan-auction keys create` as a user runs it: it names the database it writes to, and will not
silently make a new, empty embedded one where there is none."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest


def _cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items()
        if not k.startswith("LOAN_AUCTION_") and k != "DATABASE_URL"
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", *args],
        cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )


def test_keys_create_refuses_to_make_a_new_embedded_database_unasked(tmp_path: Path) -> None:
    result = _cli(tmp_path, "--role", "lender", "--subject", "lena")
    assert result.returncode != 0
    assert result.stdout == "", "no key printed"
    assert str(tmp_path / ".data" / "pg") in result.stderr
    assert "--create-database" in result.stderr and "LOAN_AUCTION_DATA_DIR" in result.stderr
    assert not (tmp_path / ".data" / "pg").exists(), "nothing was created"


async def test_keys_create_names_the_database_it_writes_to(
    tmp_path: Path, database_url: str
) -> None:
    result = _cli(tmp_path, "--role", "lender", "--subject", "lena", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert f"using the database at {database_url}" in result.stderr
    key = result.stdout.strip()
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch("SELECT role, subject, key_hash FROM api_keys")
    finally:
        await conn.close()
    assert [(r["role"], r["subject"], bytes(r["key_hash"])) for r in stored] == [
        ("lender", "lena", hashlib.sha256(key.encode()).digest())
    ]
    refused = _cli(tmp_path, "--role", "lender", "--subject", "platform:fees",
                   DATABASE_URL=database_url)
    assert refused.returncode != 0 and "subject_reserved" in refused.stderr


@pytest.mark.slow
def test_keys_create_makes_an_embedded_database_only_when_asked_then_reuses_it(
    tmp_path: Path,
) -> None:
    pgdata = tmp_path / "data" / "pg"
    env = {"LOAN_AUCTION_DATA_DIR": str(tmp_path / "data")}
    made = _cli(tmp_path, "--role", "borrower", "--subject", "bob", "--create-database", **env)
    assert made.returncode == 0, made.stderr
    assert f"using the embedded database at {pgdata}" in made.stderr
    again = _cli(tmp_path, "--role", "lender", "--subject", "lena", **env)
    assert again.returncode == 0, again.stderr
    assert f"using the embedded database at {pgdata}" in again.stderr
    assert again.stdout.strip() != made.stdout.strip()
