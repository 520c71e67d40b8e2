"""One client's stream: its history (Postgres, then memory), then what the hub offers it.

The history is read from Postgres while what the client needs is older than the hub's memory;
then the stream attaches to the hub, which hands over the rest of the history from memory and
registers it for the live part in one synchronous step, so nothing is missed or sent twice.
Composing and sending take turns from the hub's budget (see `app/live/budget.py`).
"""

import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any
from uuid import UUID

from app.live.frames import Frame, join
from app.live.hub import Hub
from app.live.store import LiveStore
from app.live.subscriber import DROPPED, Batch, Subscriber
from app.market import Market

_PAGE = 500
RETRY = b"retry: 2000\n\n"
KEEP_ALIVE = b": keep-alive\n\n"
#: What a stream's request costs the server before its first byte (HTTP, routing, the key),
#: charged to the budget; roughly, on the development machine (BENCHMARKS.md).
CONNECT_S = 300e-6
DROPPED_NOTICE = b": dropped: more than %d events behind; resume with Last-Event-ID\n\n"

Compose = Callable[[], bytes]
Part = bytes | Compose


class Stream:
    """What one client is sent; `parts()` is iterated once. A stream ends after a listing's
    resolution (a listing stream), when the server stops, or when it falls too far behind."""

    def __init__(
        self,
        hub: Hub,
        store: LiveStore,
        market: Market,
        sub: Subscriber,
        after: int | None,
    ) -> None:
        self.hub = hub
        self.store = store
        self.market = market
        self.sub = sub
        self.after = after
        self.complete = False  #: a listing stream sent the resolution: nothing more will come

    async def parts(self) -> AsyncGenerator[Part, None]:
        """What to send, in order: bytes as they are, or a `Compose` to call when the stream's
        turn in the budget comes (so all that arrived meanwhile rides in one payload)."""
        yield RETRY
        try:
            async for part in self._history():
                yield part
                if self.complete:
                    return
            if self.complete:  # a closed listing with nothing after Last-Event-ID
                return
            sub = self.sub
            while True:
                if sub.idle:
                    if sub.beat_due:
                        sub.beat_due = False
                        yield KEEP_ALIVE
                    await sub.wait()
                elif sub.pending:
                    yield self._live_payload
                    if self.complete:
                        return
                else:
                    if sub.state == DROPPED:
                        yield DROPPED_NOTICE % self.hub.buffer_events
                    return
        finally:
            self.hub.detach(self.sub)

    async def _history(self) -> AsyncIterator[Compose]:
        sub, after = self.sub, self.after
        listing = sub.listing_id
        key = None if listing is None else UUID(listing)
        first = None if listing is None else self.hub.first_seq(listing)
        if first is not None and after is not None:
            after = max(after, first - 1)  # nothing older belongs to this listing
        budget = self.hub.budget
        await budget.acquire()  # connecting costs too: a crowd reconnecting waits its turn
        budget.spend(CONNECT_S, 0, True)
        while True:
            closed = listing is not None and self.market.engine.summary(listing) is None
            upto: int | None = None
            if not closed:  # a closed listing's events are all in Postgres
                frames = self.hub.attach(sub, after)
                if frames is not None:
                    break
                upto = self.hub.floor
            async with self.hub.history_reads:
                rows = await self.store.events_after(after or 0, upto, key, _PAGE)
            if rows:
                yield functools.partial(self._history_payload, rows)
                after = rows[-1]["seq"]
            elif upto is None:  # a closed listing whose events were all sent
                self.complete = True
                return
            else:
                after = upto
        if frames:  # every listing's: this listing's are picked in the metered turn
            yield functools.partial(self._memory_payload, frames)

    def _history_payload(self, rows: list[Any]) -> bytes:
        return self._payload([Frame.stored(row) for row in rows])

    def _memory_payload(self, frames: list[Frame]) -> bytes:
        listing = self.sub.listing_id
        return self._payload(frames if listing is None else [
            f for f in frames if f.listing_id == listing
        ])

    def _payload(self, frames: list[Frame]) -> bytes:
        if not frames:
            return b""
        self.complete = self.sub.listing_id is not None and frames[-1].resolves
        return join(frames, self.sub.viewer)

    def _live_payload(self) -> bytes:
        payload, self.complete = self._compose(self.sub.take())
        return payload

    def _compose(self, batches: list[Batch]) -> tuple[bytes, bool]:
        """The payload for these batches, skipping what was already sent, and whether a listing
        stream ends with them. Batches in order (the usual case) reuse their shared payloads."""
        sub = self.sub
        if not batches:  # dropped or ended while it waited for its turn
            return b"", False
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

