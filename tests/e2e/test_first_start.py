"""The README's first command: `loan-auction serve` with no admin key set prints one and works."""

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import ROOT, SECRETS_KEY, free_port


async def test_serve_without_an_admin_key_prints_one_that_works(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LOAN_AUCTION_ADMIN_KEY"}
    env.update(DATABASE_URL=database_url, LOAN_AUCTION_DATA_DIR=str(tmp_path / "data"),
               LOAN_AUCTION_SECRETS_KEY=SECRETS_KEY)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            printed = re.search(r"admin key for this run[^:]*: (\S+)", log_path.read_text())
            assert printed is not None, log_path.read_text()
            admin = {"Authorization": f"Bearer {printed.group(1)}"}
            assert (await client.get("/v1/events", headers=admin)).status_code == 200
            assert (
                await client.get("/v1/events", headers={"Authorization": "Bearer no"})
            ).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=20)
