"""The admin key at start: a configured one is checked for length; without one, a key is kept in a
0600 file in the data folder, so it never reaches a terminal's scrollback or the JSON logs."""

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

MIN_LENGTH = 32
FILE_NAME = "admin-key"


def warn_if_short(admin_key: str | None) -> None:
    if admin_key is not None and len(admin_key) < MIN_LENGTH:
        log.warning(
            "the configured admin key is short; use at least %d random characters", MIN_LENGTH,
            extra={"length": len(admin_key)},
        )


def key_file(data_dir: Path) -> tuple[str, Path, bool]:
    """The admin key kept in `data_dir`, made on first use: (key, path, whether it was made).

    Reused on later starts (so scripts and a second instance on the same folder agree); the file
    is readable by its owner only, and tightened back to 0600 if someone loosened it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
        key = path.read_text().strip()
        if key:
            return key, path, False
        path.unlink()
        return key_file(data_dir)
    key = "la_admin_" + secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key, path, True
