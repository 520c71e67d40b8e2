"""Ids for what the service creates (bids, events, listings…): time-ordered UUID version 7
strings; random request ids; and ids from a request, where one that is not a UUID names nothing
(404)."""

import os
import time
from uuid import UUID

from app.errors import NotFound

_VARIANT = "89ab"
_CHUNK = 4096  # random bytes read from the OS at a time


class _RandomHex:
    """The OS's random bytes, read a few KiB at a time and handed out as hex: one `getrandom`
    per ~400 ids instead of one per id (the per-call cost was a third of an id's). A forked
    child starts with an empty buffer, so it never hands out its parent's bytes."""

    def __init__(self) -> None:
        self.hex = ""
        self.at = 0

    def take(self, digits: int) -> tuple[str, int]:
        """A string and the offset in it of `digits` fresh random hex digits."""
        at = self.at
        if at + digits > len(self.hex):
            self.hex, at = os.urandom(_CHUNK).hex(), 0
        self.at = at + digits
        return self.hex, at

    def clear(self) -> None:
        self.hex, self.at = "", 0


_random = _RandomHex()
os.register_at_fork(after_in_child=_random.clear)


class _Millisecond:
    """The current millisecond's part of an id, formatted once per millisecond: formatting it
    per id cost as much as the rest of the id (`functools.lru_cache(maxsize=1)` on the
    formatting costs ~110 ns more an id than this check)."""

    __slots__ = ("at", "prefix")

    def __init__(self) -> None:
        self.at, self.prefix = -1, ""


_now = _Millisecond()


def new_id() -> str:
    """A UUID version 7 (RFC 9562) in its canonical spelling: the Unix time in milliseconds,
    then 74 random bits.

    Ids made in a later millisecond sort later: a table's primary key then grows at its right
    edge, where Postgres inserts into one hot page, instead of at random pages of an index
    that outgrows memory (bench/journal_sql.py, `--random-ids`). The time it shows is no
    secret: every bid and event carries its own.
    """
    ms = time.time_ns() // 1_000_000
    now = _now
    if ms != now.at:
        now.at, now.prefix = ms, f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"
    h, i = _random.take(19)
    return (f"{now.prefix}{h[i:i + 3]}-{_VARIANT[int(h[i + 3], 16) & 3]}{h[i + 4:i + 7]}-"
            f"{h[i + 7:i + 19]}")


def random_hex(digits: int) -> str:
    """`digits` random hex digits (a request id: `os.urandom(digits // 2).hex()`)."""
    h, i = _random.take(digits)
    return h[i:i + digits]


def parse_id(value: str, not_found_code: str, detail: str = "no such id") -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(not_found_code, detail) from None
