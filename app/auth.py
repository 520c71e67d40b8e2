"""API keys: bearer tokens with a role and a subject. Only a SHA-256 hash is stored."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal
from uuid import UUID, uuid4

from app.errors import Forbidden, Unauthorized
from app.store import Store

if TYPE_CHECKING:
    from app.store import Connection

Role = Literal["admin", "borrower", "lender"]


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    subject: str

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden("forbidden_role", f"this needs the role {' or '.join(roles)}")

    def require_subject(self, subject: str) -> None:
        """Admins act for anyone; others only for themselves."""
        if self.role != "admin" and self.subject != subject:
            raise Forbidden("forbidden_subject", "this belongs to another subject")


@dataclass(frozen=True, slots=True)
class MintedKey:
    id: UUID
    key: str
    role: Role
    subject: str
    created_at: datetime


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Keys:
    """Resolves bearer keys. Keys are immutable once minted, so lookups are cached."""

    def __init__(self, store: Store, admin_key: str | None) -> None:
        self._store = store
        self._admin_hash = None if admin_key is None else hash_key(admin_key)
        self._cache: dict[bytes, Principal] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("unauthorized", "send Authorization: Bearer <key>")
        digest = hash_key(key.strip())
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal("admin", "admin")
        principal = self._cache.get(digest)
        if principal is None:
            row = await self._store.api_key(digest)  # looked up by hash: timing reveals nothing
            if row is None:
                raise Unauthorized("unauthorized", "unknown API key")
            principal = self._cache[digest] = Principal(row["role"], row["subject"])
        return principal

    async def mint(
        self, role: Role, subject: str, conn: "Connection | None" = None
    ) -> MintedKey:
        """Create a key (in `conn`'s transaction when given); the plain key is returned once and
        never stored."""
        minted = MintedKey(
            uuid4(), "la_" + secrets.token_urlsafe(32), role, subject, datetime.now(UTC)
        )
        await self._store.insert_api_key(
            minted.id, hash_key(minted.key), role, subject, minted.created_at, conn
        )
        return minted
