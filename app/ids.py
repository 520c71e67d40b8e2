"""Random ids for what the service creates (bids, events): UUID version 4 strings; and ids
from a request, where one that is not a UUID names nothing (404)."""

import os
from uuid import UUID

from app.errors import NotFound

_VARIANT = "89ab"


def new_id() -> str:
    """What `str(uuid.uuid4())` returns (122 random bits, version 4, RFC 4122 variant), made
    from the random bytes directly: about a fifth of the cost, without the UUID object."""
    h = os.urandom(16).hex()
    variant = _VARIANT[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def parse_id(value: str, not_found_code: str, detail: str = "no such id") -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(not_found_code, detail) from None
