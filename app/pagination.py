"""Cursor pagination shared by the lists: the cursor is the last row's `seq`, opaque to clients."""

import base64
from typing import Any

from app.errors import Invalid

Json = dict[str, Any]


def page(data: list[Json], rows: list[Any], limit: int) -> Json:
    more = len(rows) == limit
    cursor = base64.urlsafe_b64encode(str(rows[-1]["seq"]).encode()).decode() if more else None
    return {"data": data, "next_cursor": cursor}


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        seq = int(base64.urlsafe_b64decode(cursor.encode()).decode())
        if not 0 <= seq < 2**63:  # a bigint in Postgres; anything else is not ours
            raise ValueError(seq)
        return seq
    except (ValueError, UnicodeDecodeError):
        raise Invalid(
            "invalid_cursor",
            "cursor is not one this API returned",
            extra={"errors": [{"field": "cursor", "message": "malformed cursor"}]},
        ) from None
