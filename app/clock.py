"""Wall-clock time for the shell; the engine only ever sees the integers made here."""

import functools
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock:
    """Microseconds since the epoch, never going backwards (the engine needs monotonic `at`)."""

    def __init__(self) -> None:
        self._last = 0

    def now(self) -> int:
        self._last = max(self._last, time.time_ns() // 1000)
        return self._last


@functools.lru_cache(maxsize=256)  # one command's rows and events share their moment
def to_datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def to_micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def rfc3339(micros: int | None) -> str | None:
    return None if micros is None else format_utc(to_datetime(micros))


@functools.lru_cache(maxsize=256)
def format_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
