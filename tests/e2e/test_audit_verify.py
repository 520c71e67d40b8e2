"""`loan-auction audit verify` as an operator runs it: a real process reading Postgres."""

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.e2e.conftest import ROOT, ServiceProcess


def audit_verify(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )


async def make_events(service: ServiceProcess) -> list[dict[str, object]]:
    async with service.client() as client:
        for _ in range(2):
            listing = await client.post("/v1/listings", json={
                "borrower_id": "bob", "amount": 300_000, "term_months": 12,
                "max_rate_bps": 2000, "grade": "B", "duration_s": 60,
            })
            assert listing.status_code == 201, listing.text
            for rate in (1500, 1200):
                bid = await client.post(f"/v1/listings/{listing.json()['id']}/bids",
                                        json={"amount": 100_000, "min_rate_bps": rate,
                                              "lender_id": "ann"})
                assert bid.status_code == 201, bid.text
        events: list[dict[str, object]] = (await client.get("/v1/events")).json()["data"]
    return events


async def test_verify_passes_an_intact_chain_and_names_the_first_rewritten_event(
    service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]", database_url: str
) -> None:
    events = await make_events(service)
    assert len(events) == 6

    intact = audit_verify({"DATABASE_URL": database_url})
    assert intact.returncode == 0, intact.stderr
    assert f"6 events, head {events[-1]['hash']}" in intact.stdout

    await db.execute(
        "UPDATE events SET data = jsonb_set(data, '{amount}', '999999') WHERE seq = 3"
    )
    broken = audit_verify({"DATABASE_URL": database_url})
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "broken at seq 3" in broken.stdout
    assert "2 events before it verified" in broken.stdout


def test_verify_without_a_database_says_so_and_creates_none(tmp_path: Path) -> None:
    data_dir = tmp_path / "nothing-here"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"],
        cwd=tmp_path, env={**env, "LOAN_AUCTION_DATA_DIR": str(data_dir)},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr
    assert not data_dir.exists()
