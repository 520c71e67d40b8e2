"""Rotating the key for webhook secrets at rest, as docs/operations.md tells an operator to."""

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from cryptography.fernet import Fernet, InvalidToken

from tests.e2e.conftest import ROOT, ServiceProcess, fund
from tests.integration.receiver import Receiver, serving


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=60,
    )


async def test_secrets_rotate_re_encrypts_under_the_new_key_and_deliveries_still_verify(
    database_url: str, tmp_path: Path
) -> None:
    old = cli("secrets", "generate-key").stdout.strip()
    new = cli("secrets", "generate-key").stdout.strip()
    assert old != new
    Fernet(old)
    Fernet(new)
    env = {"LOAN_AUCTION_WEBHOOK_ALLOW_PRIVATE": "true", "LOAN_AUCTION_WEBHOOK_POLL_S": "0.1"}
    async with serving(Receiver()) as receiver:
        service = ServiceProcess(database_url, tmp_path / "service.log", tmp_path / "data",
                                 LOAN_AUCTION_SECRETS_KEY=old, **env)
        await service.start()
        try:
            async with service.client() as client:
                created = await client.post("/v1/webhook-endpoints", json={
                    "url": receiver.url, "event_types": ["bid.placed"],
                })
                assert created.status_code == 201, created.text
                receiver.secret = created.json()["secret"]
            await service.stop()

            # 1. both keys, the new one first; 2. rotate; 3. the new key alone.
            rotated = cli("secrets", "rotate", DATABASE_URL=database_url,
                          LOAN_AUCTION_SECRETS_KEY=f"{new},{old}")
            assert rotated.returncode == 0, rotated.stderr
            assert "1 webhook endpoint(s)" in rotated.stdout
            conn = await asyncpg.connect(database_url)
            try:
                sealed = await conn.fetchval("SELECT secret_sealed FROM webhook_endpoints")
            finally:
                await conn.close()
            assert Fernet(new).decrypt(sealed).decode() == receiver.secret
            try:
                Fernet(old).decrypt(sealed)
                raise AssertionError("still readable with the old key")
            except InvalidToken:
                pass

            service.extra_env["LOAN_AUCTION_SECRETS_KEY"] = new
            await service.start()
            async with service.client() as client:
                listing = await client.post("/v1/listings", json={
                    "borrower_id": "bob", "amount": 300_000, "term_months": 12,
                    "max_rate_bps": 2000, "grade": "B", "duration_s": 600,
                })
                await fund(client, "ann", amount=5_000)
                bid = await client.post(f"/v1/listings/{listing.json()['id']}/bids", json={
                    "amount": 5_000, "min_rate_bps": 1000, "lender_id": "ann",
                })
                assert bid.status_code == 201, bid.text
                await receiver.until_delivered(1)
            assert len(receiver.delivered) == 1 and receiver.bad_signatures == 0
        finally:
            if service.running:
                await service.kill()


def test_serve_with_a_database_and_no_key_refuses_to_start_with_a_clear_message(
    database_url: str,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LOAN_AUCTION_SECRETS_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "9"], cwd=ROOT,
        env={**env, "DATABASE_URL": database_url}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "LOAN_AUCTION_SECRETS_KEY is required with DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
