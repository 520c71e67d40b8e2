"""Webhook signing secrets at rest: sealed with Fernet (AES-CBC + HMAC-SHA256, from the
`cryptography` library) under keys from configuration.

`LOAN_AUCTION_SECRETS_KEY` holds the current key, then any previous keys, comma-separated: new
secrets are sealed under the first, and any of them opens a stored one (MultiFernet), so a key is
rotated without downtime (docs/operations.md). Without a key and without DATABASE_URL (the
embedded development database) a key is generated once into the data folder, mode 0600.
"""

import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from app.settings import Settings

KEY_FILE = "secrets.key"


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()

    def reseal(self, sealed: str) -> str:
        """The same secret sealed under the current key."""
        return self._fernet.rotate(sealed.encode()).decode()


def configured_keys(settings: Settings) -> list[str]:
    if settings.secrets_key is None:
        return []
    return [k.strip() for k in settings.secrets_key.get_secret_value().split(",") if k.strip()]


def check_configured(settings: Settings) -> None:
    """Refuse to start with a real database but no key, or with a key Fernet cannot use."""
    keys = configured_keys(settings)
    if not keys and settings.database_url:
        raise SystemExit(
            "error: LOAN_AUCTION_SECRETS_KEY is required with DATABASE_URL (webhook signing"
            " secrets are encrypted at rest); make one with `loan-auction secrets generate-key`"
        )
    for n, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise SystemExit(
                f"error: key {n} in LOAN_AUCTION_SECRETS_KEY is not a Fernet key (32 url-safe"
                " base64-encoded bytes); make one with `loan-auction secrets generate-key`"
            ) from None


def secret_box(settings: Settings) -> SecretBox:
    return SecretBox(configured_keys(settings) or [embedded_key(settings.data_dir)])


def embedded_key(data_dir: Path) -> str:
    """The development key in `data_dir`, created on first use, readable by its owner only."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = data_dir / f".{KEY_FILE}.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, Fernet.generate_key() + b"\n")
        finally:
            os.close(fd)
        try:
            os.link(draft, path)  # atomic: a racing process keeps the first key written
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def generate_key() -> str:
    return Fernet.generate_key().decode()
