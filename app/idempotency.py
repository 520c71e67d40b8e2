"""Idempotency-Key handling: a retry replays the stored answer instead of acting twice.

The record is written in the same transaction as the action: by the journal for market
commands, and inside the action's own Postgres transaction for other writes (`transaction`), so
an answer is stored exactly when its action is. A refusal that came from executing the command
(a 404, 409 or 422 it decided, such as `bid_not_competitive` or `rate_above_max`) is an answer
too: stored and replayed like a success, as Stripe does. A request refused before it ran (an
invalid shape, 401, 403, 429) or one that failed (5xx) is not stored: nothing happened, so
running it again is safe.

Concurrent duplicates in this process wait for the first, then replay its record. The lookup
and the action run in a task of their own, holding the caller's slot: a client that disconnects
cannot cancel the action between acting and recording, and its slot stays held until the record
is committed or the action has failed.
"""

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from app.errors import ApiError, Invalid
from app.journal import Row
from app.store import Store

if TYPE_CHECKING:
    Connection = PoolConnectionProxy[asyncpg.Record]

#: Statuses of refusals decided by running a command: stored like a success.
_OUTCOMES = frozenset({404, 409, 422})


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    replayed: bool = False
    #: What a replay shows when it must differ from `body`: a secret is shown once, never stored.
    stored: bytes | None = None


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    scope: str  # the caller's role and subject: keys of different callers never collide
    key: str
    request_hash: bytes
    path: str

    @classmethod
    def of(cls, scope: str, key: str, method: str, path: str, body: bytes) -> "IdempotentRequest":
        digest = hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).digest()
        return cls(scope, key, digest, path)

    def record(self, reply: Reply, at: datetime) -> Row:
        body = reply.body if reply.stored is None else reply.stored
        return (self.scope, self.key, self.request_hash, reply.status, body, at)

    def refusal(self, error: ApiError) -> Reply:
        """The problem answer for `error`, byte for byte what the error handler would send."""
        return Reply(error.status, orjson.dumps(error.problem(self.path)))


def is_outcome(error: ApiError) -> bool:
    """A refusal the command itself decided (stored), not an auth, limit or outage error."""
    return error.status in _OUTCOMES


class Idempotency:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._inflight: dict[tuple[str, str], asyncio.Task[Reply]] = {}

    async def run(
        self, request: IdempotentRequest, action: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        slot = (request.scope, request.key)
        while (pending := self._inflight.get(slot)) is not None:
            await asyncio.wait([pending])
        # The slot is taken before the record is looked up, so a lookup can never be stale.
        task = asyncio.ensure_future(self._replay_or_act(request, action))
        self._inflight[slot] = task
        task.add_done_callback(lambda done: self._release(slot, done))
        return await asyncio.shield(task)

    async def _replay_or_act(
        self, request: IdempotentRequest, action: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        record = await self._store.idempotency_record(request.scope, request.key)
        if record is None:
            return await action()
        if bytes(record["request_hash"]) != request.request_hash:
            raise Invalid(
                "idempotency_key_reused", "this Idempotency-Key was used with another request"
            )
        return Reply(record["status"], bytes(record["body"]), replayed=True)

    def _release(self, slot: tuple[str, str], task: "asyncio.Task[Reply]") -> None:
        del self._inflight[slot]
        if not task.cancelled():
            task.exception()  # seen: a requester that went away cannot retrieve it

    async def transaction(
        self, request: IdempotentRequest | None, act: "Callable[[Connection], Awaitable[Reply]]"
    ) -> Reply:
        """Run a write outside the journal in one Postgres transaction with its record."""
        if request is None:
            async with self._store.pool.acquire() as conn, conn.transaction():
                return await act(conn)

        async def action() -> Reply:
            async with self._store.pool.acquire() as conn, conn.transaction():
                try:
                    async with conn.transaction():  # a savepoint: a refusal undoes the writes
                        reply = await act(conn)
                except ApiError as error:
                    if not is_outcome(error):
                        raise
                    reply = request.refusal(error)
                await self._store.insert_idempotency(conn, request.record(reply, datetime.now(UTC)))
            return reply

        return await self.run(request, action)
