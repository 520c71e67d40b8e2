"""A bad configuration stops `loan-auction serve` before anything starts, naming what is wrong."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LOAN_AUCTION_POLICY_FILE": "{dir}/policy.toml"}, "grades.B.reserve_bps"),
        ({"LOAN_AUCTION_POLICY_FILE": "{dir}/missing.toml"}, "cannot be read"),
        ({"LOAN_AUCTION_MAX_LENDER_SHARE_BPS": "10001"}, "LOAN_AUCTION_MAX_LENDER_SHARE_BPS"),
        ({"LOAN_AUCTION_BORROWER_LIMIT": "-1"}, "LOAN_AUCTION_BORROWER_LIMIT"),
    ],
)
def test_serve_refuses_a_bad_configuration_with_a_message_naming_it(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    (tmp_path / "policy.toml").write_text("[grades.B]\nreserve_bps = 20000\n")
    settings = {k: v.format(dir=tmp_path) for k, v in env.items()}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "1"],
        cwd=ROOT, env={**os.environ, "LOAN_AUCTION_DATA_DIR": str(tmp_path / "data"), **settings},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
    assert not (tmp_path / "data").exists(), "stopped before starting a database"
