"""API keys: authenticate a bearer key, mint, list, revoke, and record when each was last used.

Only the writer instance serves the API (a standby answers 503 to everything but health), so one
process authenticates every request and its in-process cache is the only one: revoking a key
drops it from that cache before the 204 goes out, and a cached key's expiry is checked on every
request. If a process ever becomes writer again after another one was, a key revoked meanwhile
can live on in its cache only until the next usage flush (at most a minute), which evicts keys
found revoked in Postgres.
"""

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID, uuid4

from app.auth import Principal, Role
from app.clock import format_utc
from app.errors import Invalid, NotFound, Unauthorized
from app.ids import parse_id
from app.keys.store import KeyStore
from app.pagination import Json, decode_cursor, page
from app.ratelimit import RateLimiter

if TYPE_CHECKING:
    from app.store import Connection

log = logging.getLogger(__name__)

MAX_TTL_S = 5 * 366 * 86_400  # a key may live at most about five years
PREFIX_CHARS = 8  # "la_" and five random characters: enough to recognise, useless to guess
_ADMIN = Principal("admin", "admin")
_UNKNOWN = "unknown, revoked or expired API key"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class MintedKey:
    id: UUID
    key: str
    role: Role
    subject: str
    created_at: datetime
    expires_at: datetime | None

    def json(self) -> Json:
        return {
            "id": str(self.id), "key": self.key, "role": self.role, "subject": self.subject,
            "prefix": self.key[:PREFIX_CHARS], "created_at": format_utc(self.created_at),
            "expires_at": None if self.expires_at is None else format_utc(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class _Known:
    principal: Principal
    key_id: UUID
    expires_at: float  # epoch seconds; inf for a key that never expires


class Keys:
    """Resolves bearer keys. A valid key costs one lookup, then none (O(1) from the cache); a bad
    one costs one lookup per `refused_ttl_s`. Each refusal costs the client address a token from
    `addresses`, and an address with none left gets 429 without a lookup; looking up a valid
    key costs nothing, so many fresh keys behind one gateway are not held back."""

    def __init__(
        self,
        store: KeyStore,
        admin_key: str | None,
        addresses: RateLimiter,
        refused_ttl_s: float = 30.0,
        refused_max: int = 10_000,
    ) -> None:
        self.store = store
        self.clock: Callable[[], float] = time.time  # expiry is wall-clock time
        self._admin_hash = None if admin_key is None else hash_key(admin_key)
        self._addresses = addresses
        self._known: dict[bytes, _Known] = {}
        self._refused = _Recent(refused_ttl_s, refused_max)
        self._used: set[UUID] = set()
        self._revocations = 0  # bumped on every revocation, so a racing lookup is not cached

    async def authenticate(
        self, authorization: str | None, client: tuple[str, int] | None
    ) -> Principal:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            self._refuse(client, "send Authorization: Bearer <key>")
        digest = hash_key(key.strip())
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return _ADMIN
        known = self._known.get(digest)
        if known is not None and self.clock() < known.expires_at:
            self._used.add(known.key_id)
            return known.principal
        return await self._look_up(digest, client)

    async def mint(
        self, role: Role, subject: str, expires_at: datetime | None = None,
        ttl_s: int | None = None, conn: "Connection | None" = None,
    ) -> MintedKey:
        """Create a key (in `conn`'s transaction when given, so an idempotency record can ride
        with it); the plain key is returned once and never stored."""
        if subject == "external" or subject.startswith("platform:"):  # the ledger's own accounts
            raise Invalid("subject_reserved", "this subject names a system account of the ledger",
                          extra={"errors": [{"field": "subject", "message": "reserved"}]})
        now = datetime.now(UTC)
        minted = MintedKey(
            uuid4(), "la_" + secrets.token_urlsafe(32), role, subject, now,
            _expiry(now, expires_at, ttl_s),
        )
        await self.store.insert(
            minted.id, hash_key(minted.key), role, subject, minted.key[:PREFIX_CHARS],
            now, minted.expires_at, conn,
        )
        return minted

    async def page(self, subject: str | None, cursor: str | None, limit: int) -> Json:
        rows = await self.store.page(subject, decode_cursor(cursor), limit)
        return page([_key_json(r) for r in rows], rows, limit)

    async def revoke(self, key_id: str) -> None:
        """Idempotent. The key is refused from the caller's very next request."""
        key = parse_id(key_id, "api_key_not_found", "no API key with this id")
        digest = await self.store.revoke(key, datetime.now(UTC))
        if digest is None:
            raise NotFound("api_key_not_found", "no API key with this id")
        self._forget(bytes(digest))

    async def record_usage(self) -> None:
        """Write `last_used_at` for the keys used since the last call, in one UPDATE."""
        if not self._used:
            return
        used, self._used = self._used, set()
        try:
            revoked = await self.store.touch(list(used), datetime.now(UTC))
        except BaseException:
            self._used |= used  # postgres away: the next round writes them
            raise
        for digest in revoked:
            self._forget(digest)

    # --- internals --------------------------------------------------------------------------

    async def _look_up(self, digest: bytes, client: tuple[str, int] | None) -> Principal:
        self._known.pop(digest, None)  # expired, if it was there
        if digest in self._refused:
            self._refuse(client, _UNKNOWN)
        self._addresses.require(_address(client))
        while True:
            revocations = self._revocations
            row = await self.store.active(digest)
            if revocations == self._revocations:
                break  # no revocation landed while we waited: the row is current
        if row is None:
            self._refused.add(digest)
            self._refuse(client, _UNKNOWN)
        expires = math.inf if row["expires_at"] is None else row["expires_at"].timestamp()
        known = self._known[digest] = _Known(
            Principal(row["role"], row["subject"], str(row["id"])), row["id"], expires
        )
        self._used.add(known.key_id)
        return known.principal

    def _forget(self, digest: bytes) -> None:
        self._known.pop(digest, None)
        self._refused.add(digest)
        self._revocations += 1

    def _refuse(self, client: tuple[str, int] | None, detail: str) -> NoReturn:
        self._addresses.check(_address(client))
        raise Unauthorized("unauthorized", detail)


class _Recent:
    """Hashes refused lately, each for `ttl_s`; bounded, the oldest forgotten first (a dict keeps
    insertion order). Twelve lines rather than a dependency: only O(1) get/add/evict is needed."""

    def __init__(
        self, ttl_s: float, size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._clock = clock
        self._until: dict[bytes, float] = {}

    def __contains__(self, digest: bytes) -> bool:
        until = self._until.get(digest)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._until[digest]
        return False

    def add(self, digest: bytes) -> None:
        self._until.pop(digest, None)
        self._until[digest] = self._clock() + self._ttl_s
        if len(self._until) > self._size:
            del self._until[next(iter(self._until))]


async def record_usage_every(keys: Keys, every_s: float = 60.0) -> None:
    """The worker behind `last_used_at`: one UPDATE a minute, off the request path."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await keys.record_usage()
        except Exception as error:
            log.warning("could not record API key use", extra={"error": repr(error)})


def _address(client: tuple[str, int] | None) -> str:
    return client[0] if client else ""


def _expiry(now: datetime, expires_at: datetime | None, ttl_s: int | None) -> datetime | None:
    if ttl_s is not None:
        return now + timedelta(seconds=ttl_s)
    if expires_at is not None and not now < expires_at <= now + timedelta(seconds=MAX_TTL_S):
        raise Invalid(
            "expiry_out_of_range", "expires_at must be in the future, at most about 5 years away",
            extra={"errors": [{"field": "expires_at", "message": "out of range"}]},
        )
    return None if expires_at is None else expires_at.astimezone(UTC)


def _key_json(row: Any) -> Json:
    def moment(name: str) -> str | None:
        return None if row[name] is None else format_utc(row[name])

    return {
        "id": str(row["id"]), "role": row["role"], "subject": row["subject"],
        "prefix": row["prefix"], "created_at": format_utc(row["created_at"]),
        "last_used_at": moment("last_used_at"), "expires_at": moment("expires_at"),
        "revoked_at": moment("revoked_at"),
    }
