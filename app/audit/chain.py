"""Hashing the event log into a chain (docs/operations.md, "Audit chain").

`hash` = lowercase hex SHA-256 of the previous event's hash (its 64 ASCII hex characters)
followed by this event's canonical JSON: the object `GET /v1/events` returns, without `hash`,
keys sorted at every level, no whitespace, non-ASCII as UTF-8. The first event chains from 64
zeros. orjson with sorted keys writes exactly what `json.dumps(e, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)` writes for event data (ints, strings, booleans,
nulls, lists and objects; the service never puts floats in an event), several times faster.
"""

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import orjson

from app.clock import format_utc

GENESIS = "0" * 64

Row = tuple[Any, ...]


def canonical(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def reference_canonical(event: dict[str, Any]) -> bytes:
    """The definition itself, in the standard library: what a verifier outside can run."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(previous: str, canonical_json: bytes) -> str:
    return hashlib.sha256(previous.encode("ascii") + canonical_json).hexdigest()


def event_object(seq: int, row: Row) -> dict[str, Any]:
    """The event as `GET /v1/events` renders it, from a journal row (id, type, listing_id,
    created_at, data) before it is stored: `data` as JSON text or as the object itself."""
    event_id, kind, _listing_id, created_at, data = row
    if isinstance(data, str | bytes):
        data = orjson.loads(data)
    return {
        "id": str(event_id), "seq": seq, "type": kind, "created_at": format_utc(created_at),
        "data": data,
    }


def chain_rows(seq: int, head: str, rows: Iterable[Row]) -> tuple[list[Row], int, str]:
    """Number `rows` after `seq` and chain them after `head`.

    Returns the rows as (seq, *row, hash), the last seq and the new head.
    """
    chained = []
    for row in rows:
        seq += 1
        head = link(head, canonical(event_object(seq, row)))
        chained.append((seq, *row, head))
    return chained, seq, head
