"""The README's tour works exactly as written, right after the README's first command, and a
second time in a row."""

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, SECRETS_KEY, free_port, until_ready


def tour_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## A five-minute tour"):]
    found = re.search(r"```\n(.*?)```", section, flags=re.S)
    assert found is not None, "the tour's code block"
    return found.group(1)


@pytest.mark.slow
async def test_the_readme_tour_runs_as_written_twice_in_a_row(
    database_url: str, tmp_path: Path
) -> None:
    assert shutil.which("curl"), "the tour needs curl"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOAN_AUCTION_")}
    env.update(DATABASE_URL=database_url, LOAN_AUCTION_SECRETS_KEY=SECRETS_KEY,
               LOAN_AUCTION_PORT=str(port))
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:  # the first command's `loan-auction serve`, in this folder
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], cwd=tmp_path, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
    try:
        await until_ready(f"http://127.0.0.1:{port}", process, log_path)
        script = tour_script()
        for run in (1, 2):
            result = await asyncio.to_thread(
                subprocess.run, ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                env={**env, "U": f"http://127.0.0.1:{port}"}, capture_output=True, text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"run {run}:\n{result.stdout}\n{result.stderr}"
            out = result.stdout
            assert "bid" in out and "50000 allocated" in out, out
            assert "'rate_bps': 1800" in out and "'reserve_contribution': 4500" in out, out
            assert "max: available" in out and "'listing.funded'" in out, out
    finally:
        process.terminate()
        process.wait(timeout=20)
