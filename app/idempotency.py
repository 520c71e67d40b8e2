"""Idempotency-Key handling: a retry replays the stored answer instead of acting twice.

The record is written by the journal in the same transaction as the action, so an answer is
stored exactly when its action is. Concurrent duplicates in this process wait for the first.
Only successful answers are stored: a rejected request changed nothing, so running it again is
safe (and may now succeed).
"""

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from app.errors import Invalid
from app.journal import Row
from app.store import Store


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    scope: str  # the caller's role and subject: keys of different callers never collide
    key: str
    request_hash: bytes

    @classmethod
    def of(cls, scope: str, key: str, method: str, path: str, body: bytes) -> "IdempotentRequest":
        digest = hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).digest()
        return cls(scope, key, digest)

    def record(self, reply: Reply, at: datetime) -> Row:
        return (self.scope, self.key, self.request_hash, reply.status, reply.body, at)


class Idempotency:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._inflight: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def run(
        self, request: IdempotentRequest, action: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        slot = (request.scope, request.key)
        while True:
            pending = self._inflight.get(slot)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            record = await self._store.idempotency_record(*slot)
            if record is not None:
                if bytes(record["request_hash"]) != request.request_hash:
                    raise Invalid(
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with another request",
                    )
                return Reply(record["status"], bytes(record["body"]), replayed=True)
            if slot not in self._inflight:
                break
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[slot] = done
        try:
            return await action()
        finally:
            del self._inflight[slot]
            done.set_result(None)
