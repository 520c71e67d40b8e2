"""Without a configured admin key, `serve` keeps one in an owner-only file in the data folder."""

import stat
from pathlib import Path

from app.keys.admin import key_file


def test_the_admin_key_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    key, path, made = key_file(tmp_path / "data")
    assert made and len(key) >= 32
    assert path == tmp_path / "data" / "admin-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key
    assert key_file(tmp_path / "data") == (key, path, False), "kept across starts"


def test_a_loosened_admin_key_file_is_tightened_again(tmp_path: Path) -> None:
    key, path, _ = key_file(tmp_path)
    path.chmod(0o644)
    assert key_file(tmp_path)[0] == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
