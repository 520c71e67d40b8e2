"""The README's first command: `loan-auction serve` with no admin key set makes one that works,
and keeps it in an owner-only file in the data folder, never on a terminal stream or in a log."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import ROOT, SECRETS_KEY, free_port, until_ready


async def test_serve_without_an_admin_key_keeps_one_in_an_owner_only_file_that_works(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LOAN_AUCTION_ADMIN_KEY"}
    env.update(DATABASE_URL=database_url, LOAN_AUCTION_DATA_DIR=str(tmp_path / "data"),
               LOAN_AUCTION_SECRETS_KEY=SECRETS_KEY)
    out_path, log_path = tmp_path / "stdout.txt", tmp_path / "serve.log"
    with out_path.open("wb") as out, log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=log,
        )
    try:
        await until_ready(f"http://127.0.0.1:{port}", process, log_path, seconds=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as client:
            printed = re.search(r"admin key written to (\S+)", out_path.read_text())
            assert printed is not None, out_path.read_text()
            assert Path(printed.group(1)) == tmp_path / "data" / "admin-key"
            mode, key = _mode_and_text(Path(printed.group(1)))
            assert mode == 0o600
            admin = {"Authorization": f"Bearer {key}"}
            assert (await client.get("/v1/events", headers=admin)).status_code == 200
            assert (
                await client.get("/v1/events", headers={"Authorization": "Bearer no"})
            ).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert key not in out_path.read_text() + log_path.read_text(), "the key is never printed"


def _mode_and_text(path: Path) -> tuple[int, str]:
    return stat.S_IMODE(path.stat().st_mode), path.read_text().strip()
