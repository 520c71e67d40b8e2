"""The development key lives in the data folder, owner-only; keys rotate through MultiFernet."""

import stat
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr

from app.settings import Settings
from app.webhooks.sealing import KEY_FILE, SecretBox, embedded_key, secret_box


def test_the_embedded_key_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = embedded_key(data)
    mode = stat.S_IMODE((data / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert embedded_key(data) == first
    Fernet(first)  # a usable key
    assert [p.name for p in data.iterdir()] == [KEY_FILE], "no draft left behind"


def test_without_a_database_url_or_key_the_embedded_key_is_used(tmp_path: Path) -> None:
    box = secret_box(Settings(data_dir=tmp_path, database_url=None, secrets_key=None))
    sealed = box.seal("whsec_x")
    assert Fernet(embedded_key(tmp_path)).decrypt(sealed.encode()) == b"whsec_x"


def test_a_new_key_first_opens_old_secrets_and_reseals_them_under_itself() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_under_old = SecretBox([old]).seal("whsec_x")
    keys = SecretStr(f"{new},{old}")
    both = secret_box(Settings(database_url="postgresql://x", secrets_key=keys))
    assert both.open(sealed_under_old) == "whsec_x"
    resealed = both.reseal(sealed_under_old)
    assert SecretBox([new]).open(resealed) == "whsec_x"
    assert SecretBox([new]).open(both.seal("whsec_y")) == "whsec_y"
