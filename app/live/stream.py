"""One client's stream: its history (Postgres, then memory), then what the hub offers it.

The history is read from Postgres while what the client needs is older than the hub's memory;
then the stream attaches to the hub, which hands over the rest of the history from memory and
registers it for the live part in one synchronous step, so nothing is missed or sent twice.
Composing and sending take turns from the hub's budget (see `app/live/budget.py`).
"""

import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any
from uuid import UUID

from app.live.frames import Frame, join
from app.live.hub import DROPPED, Batch, Hub, Subscriber
from app.live.store import LiveStore
from app.market import Market

_PAGE = 500
RETRY = b"retry: 2000\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


class Stream:
    """The chunks to send; `chunks()` is iterated once."""

    def __init__(
        self,
        hub: Hub,
        store: LiveStore,
        market: Market,
        sub: Subscriber,
        after: int | None,
        heartbeat_s: float,
    ) -> None:
        self.hub = hub
        self.store = store
        self.market = market
        self.sub = sub
        self.after = after
        self.heartbeat_s = heartbeat_s
        self.complete = False  #: a listing stream sent the resolution: nothing more will come

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        yield RETRY
        try:
            async for chunk in self._history():
                yield chunk
            if not self.complete:
                async for chunk in self._live():
                    yield chunk
        finally:
            self.hub.detach(self.sub)

    async def _history(self) -> AsyncIterator[bytes]:
        sub, after = self.sub, self.after
        listing = sub.listing_id
        key = None if listing is None else UUID(listing)
        while True:
            closed = listing is not None and self.market.engine.summary(listing) is None
            upto: int | None = None
            if not closed:  # a closed listing's events are all in Postgres
                frames = self.hub.attach(sub, after)
                if frames is not None:
                    break
                upto = self.hub.floor
            rows = await self.store.events_after(after or 0, upto, key, _PAGE)
            if rows:
                async for chunk in self._metered(functools.partial(_stored, rows)):
                    yield chunk
                after = rows[-1]["seq"]
                if self.complete:
                    return
            elif upto is None:  # a closed listing whose events were all sent
                self.complete = True
                return
            else:
                after = upto
        if frames:
            sub.last_seq = frames[-1].seq
            async for chunk in self._metered(lambda: frames):
                yield chunk

    async def _metered(self, frames_of: Callable[[], list[Frame]]) -> AsyncIterator[bytes]:
        """Rendering history takes a turn from the budget like a live payload."""
        budget = self.hub.budget
        await budget.acquire()
        started, payload = time.thread_time(), b""
        try:
            frames = frames_of()
            self.complete = self.sub.listing_id is not None and frames[-1].resolves
            payload = join(frames, self.sub.viewer)
            yield payload
        finally:
            budget.spend(time.thread_time() - started, len(payload))

    async def _live(self) -> AsyncIterator[bytes]:
        sub, budget = self.sub, self.hub.budget
        while True:
            if sub.idle:
                await sub.wait(self.heartbeat_s)
                if sub.idle:
                    yield KEEP_ALIVE
                continue
            if sub.pending:
                await budget.acquire()
                started, payload = time.thread_time(), b""
                try:
                    batches = sub.take()  # what came while queued for the budget rides along
                    if batches:
                        payload, ends = self._compose(batches)
                        if payload:
                            yield payload
                        if ends:
                            return
                finally:
                    budget.spend(time.thread_time() - started, len(payload))
                continue
            if sub.state == DROPPED:
                yield b": dropped: more than %d events behind; resume with Last-Event-ID\n\n" % (
                    self.hub.buffer_events
                )
            return

    def _compose(self, batches: list[Batch]) -> tuple[bytes, bool]:
        """The payload for these batches, skipping what was already sent, and whether a listing
        stream ends with them. Batches in order (the usual case) reuse their shared payloads."""
        sub = self.sub
        ends = sub.listing_id is not None and any(b.resolves for b in batches)
        if batches[0].frames[0].seq > sub.last_seq:
            sub.last_seq = batches[-1].frames[-1].seq
            if len(batches) == 1:
                return batches[0].payload(sub.viewer), ends
            return b"".join(b.payload(sub.viewer) for b in batches), ends
        frames = [f for b in batches for f in b.frames if f.seq > sub.last_seq]
        if frames:
            sub.last_seq = frames[-1].seq
        return join(frames, sub.viewer), ends


def _stored(rows: list[Any]) -> list[Frame]:
    return [Frame.stored(row) for row in rows]
