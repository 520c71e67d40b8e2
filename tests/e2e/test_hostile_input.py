"""Schemathesis against the service's own OpenAPI schema: no 5xx, responses match the schema."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_KEY, UNLIMITED, ServiceProcess

_CHECKS = ",".join((
    "not_a_server_error", "response_schema_conformance", "status_code_conformance",
    "content_type_conformance",
))


@pytest.fixture
def service_env() -> dict[str, str]:
    return UNLIMITED  # this drives load through one key


@pytest.mark.slow
async def test_a_thousand_generated_requests_get_no_5xx_and_conform_to_the_schema(
    service: ServiceProcess, tmp_path: Path
) -> None:
    seed = os.environ.get("LOAN_AUCTION_FUZZ_SEED", "20261128")
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{service.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {ADMIN_KEY}",
        "--checks",
        _CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "40",
        "--workers",  # one: hypothesis parses lambdas with `ast`, which on CPython 3.11 can fail
        "1",          # when two threads do it at once ("AST constructor recursion depth mismatch")
        "--seed",
        seed,
        "--request-timeout",
        "10",
        "--exclude-path-regex",  # every event from now on: an answer that never ends
        "^/v1/events/stream$",
    ]
    soak_s = os.environ.get("LOAN_AUCTION_FUZZ_SECONDS")  # soak mode: fuzz for this long
    if soak_s:
        command += ["--max-time", soak_s]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300 + int(soak_s or 0),
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    output = result.stdout + result.stderr
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    print(counts.group(0) if counts else output[-3000:])
    assert result.returncode == 0, output[-6000:]
    assert counts is not None, output[-3000:]
    generated, passed = int(counts.group(1)), int(counts.group(2))
    assert generated >= 1000 and passed == generated
