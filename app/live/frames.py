"""One committed event as a server-sent-event frame, rendered once per audience, not per client.

The `data:` line is the JSON object `GET /v1/events` returns for the event: both go through
`app.rendering.event_from_row`, fed the same columns (the journal's committed row, or the stored
row), so a field added to events shows up in both. Admins read the full frame; every other
reader reads the masked one, where lenders' ids are `mask_id`-ed, except a reader's own id.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.journal.statements import EVENT_COLUMNS  # a committed event row, seq first
from app.masking import mask_id
from app.rendering import Json, event_from_row

RESOLUTIONS = frozenset({"listing.funded", "listing.failed", "listing.cancelled"})
_NO_LENDERS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads a stream: an admin sees every id; others see lenders' ids masked, except a
    lender its own (`lender_id` is the key's subject for a lender key, None otherwise)."""

    admin: bool
    lender_id: str | None


class Frame:
    """An event and its SSE bytes. Each rendering is made on first use, then shared. O(size)."""

    __slots__ = ("seq", "type", "listing_id", "_fields", "_row", "_full", "_masked", "_lenders")

    def __init__(
        self, seq: int, kind: str, listing_id: Any, fields: dict[str, Any] | None,
        row: Sequence[Any] = (),
    ) -> None:
        self.seq = seq
        self.type = kind
        self.listing_id = None if listing_id is None else str(listing_id)
        self._fields = fields
        self._row = row  # a committed row, named (`_named`) only if the frame is rendered
        self._full: bytes | None = None
        self._masked: bytes | None = None
        self._lenders: frozenset[str] | None = None

    @classmethod
    def committed(cls, row: Sequence[Any]) -> "Frame":
        """From a row of a committed journal entry; its `data` is the object. Every committed
        event becomes a frame, and most are never rendered (no stream), so naming the row's
        columns waits for the first rendering."""
        if len(row) != len(EVENT_COLUMNS):
            raise ValueError(f"an event row has {len(EVENT_COLUMNS)} columns, not {len(row)}")
        return cls(row[0], row[2], row[3], None, row)

    @classmethod
    def stored(cls, record: Any) -> "Frame":
        """From an `events` row read back from Postgres; its `data` is decoded."""
        fields = dict(record.items())
        return cls(fields["seq"], fields["type"], fields["listing_id"], fields)

    @property
    def resolves(self) -> bool:
        return self.type in RESOLUTIONS

    def bytes_for(self, viewer: Viewer) -> bytes:
        if viewer.admin:
            return self.full
        if viewer.lender_id is not None and viewer.lender_id in self.lenders:
            return self._render(_masked(self._data(), viewer.lender_id))  # rare: own bids only
        return self.masked

    @property
    def full(self) -> bytes:
        if self._full is None:
            data = self._named()["data"]
            self._full = self._render(orjson.Fragment(data) if isinstance(data, str) else data)
        return self._full

    @property
    def masked(self) -> bytes:
        if self._masked is None:
            self._masked = self._render(_masked(self._data(), None)) if self.lenders else self.full
        return self._masked

    @property
    def lenders(self) -> frozenset[str]:
        """Lender ids anywhere in the event's data (bids, a loan's fills)."""
        if self._lenders is None:
            found: set[str] = set()
            _collect_lenders(self._data(), found)
            self._lenders = frozenset(found) if found else _NO_LENDERS
        return self._lenders

    def _named(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = dict(zip(EVENT_COLUMNS, self._row, strict=True))
        return self._fields

    def _data(self) -> Any:
        data = self._named()["data"]
        return orjson.loads(data) if isinstance(data, str) else data

    def _render(self, data: Any) -> bytes:
        event: Json = event_from_row({**self._named(), "data": data})
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (
            self.seq, self.type.encode(), orjson.dumps(event)
        )


def join(frames: Iterable[Frame], viewer: Viewer) -> bytes:
    return b"".join(f.bytes_for(viewer) for f in frames)


def _masked(value: Any, keep: str | None) -> Any:
    if isinstance(value, dict):
        return {
            k: mask_id(v) if k == "lender_id" and isinstance(v, str) and v != keep
            else _masked(v, keep)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked(v, keep) for v in value]
    return value


def _collect_lenders(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "lender_id" and isinstance(v, str):
                found.add(v)
            else:
                _collect_lenders(v, found)
    elif isinstance(value, list):
        for v in value:
            _collect_lenders(v, found)
