"""The hub: committed events fanned out to stream subscribers, after the commit, in batches.

`publish` runs in the journal's commit callback and only queues the rows, so the bid's path
pays O(events) list appends. Every `flush_s` the queued rows become frames, join the in-memory
history (the last `history_events` events, for resuming), and go to each channel (every event,
or one listing's) as one `Batch` shared by the channel's subscribers: one rendering per event
and audience, one joined payload per batch and audience, whatever the number of subscribers.
Each subscriber's own task sends what it was offered; one whose backlog passes `buffer_events`
is dropped (closed, to resume with Last-Event-ID), so a slow reader costs nothing but itself.
"""

import asyncio
import bisect
import itertools
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from app.errors import Unavailable
from app.live.budget import Budget
from app.live.frames import Frame, Viewer, join

log = logging.getLogger(__name__)

LIVE, ENDED, DROPPED = "live", "ended", "dropped"


class Batch:
    """One flush's frames for one channel, with each audience's payload joined once."""

    __slots__ = ("frames", "resolves", "_full", "_masked", "_lenders")

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = frames
        self.resolves = any(f.resolves for f in frames)
        self._full: bytes | None = None
        self._masked: bytes | None = None
        self._lenders: frozenset[str] | None = None

    def payload(self, viewer: Viewer) -> bytes:
        if viewer.admin:
            if self._full is None:
                self._full = b"".join(f.full for f in self.frames)
            return self._full
        if viewer.lender_id is not None and viewer.lender_id in self.lenders:
            return join(self.frames, viewer)  # the reader's own bids are in it: its own copy
        if self._masked is None:
            self._masked = b"".join(f.masked for f in self.frames)
        return self._masked

    @property
    def lenders(self) -> frozenset[str]:
        if self._lenders is None:
            self._lenders = frozenset().union(*(f.lenders for f in self.frames))
        return self._lenders


class Subscriber:
    """One stream's place in the hub: the batches offered and not yet taken, and its state."""

    __slots__ = (
        "listing_id", "viewer", "last_seq", "state", "sending", "task", "_pending", "_backlog",
        "_waiter",
    )

    def __init__(self, listing_id: str | None, viewer: Viewer) -> None:
        self.listing_id = listing_id
        self.viewer = viewer
        self.last_seq = 0  #: the last event seq handed to the stream
        self.state = LIVE
        self.sending = False  #: inside the server's send: only cancelling the task stops it
        self.task: asyncio.Task[Any] | None = None
        self._pending: list[Batch] = []
        self._backlog = 0
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, batch: Batch, limit: int) -> bool:
        """Queue a batch; False when the backlog passes `limit` events (the caller drops it)."""
        self._pending.append(batch)
        self._backlog += len(batch.frames)
        if self._backlog > limit:
            return False
        self._wake()
        return True

    @property
    def idle(self) -> bool:
        """Live with nothing to send (after a wait: the heartbeat is due)."""
        return self.state == LIVE and not self._pending

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[Batch]:
        pending, self._pending, self._backlog = self._pending, [], 0
        return pending

    async def wait(self, timeout: float) -> None:
        """Until a batch is offered, the stream ends, or `timeout` seconds pass."""
        if self._pending or self.state != LIVE:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def end(self, state: str) -> None:
        self.state = state
        self._pending, self._backlog = [], 0
        self._wake()
        if self.sending and self.task is not None:
            self.task.cancel()  # stuck in a send to a client that does not read: cut it off

    def _wake(self) -> None:
        if self._waiter is not None:
            _release(self._waiter)


class Hub:
    def __init__(
        self, flush_s: float, buffer_events: int, history_events: int, budget: Budget
    ) -> None:
        self.flush_s = flush_s
        self.budget = budget
        self.buffer_events = buffer_events
        self.history_events = history_events
        self.closed = False
        #: Every event with a seq in (floor, flushed] is in `_history`; older ones are in Postgres.
        self.floor = 0
        self.flushed = 0
        self.dropped = 0
        self._queued: list[Sequence[Any]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._history: deque[Frame] = deque()
        self._channels: dict[str | None, set[Subscriber]] = {}

    def start(self, last_seq: int) -> None:
        """`last_seq`: the highest event seq committed before the first publish."""
        self.floor = self.flushed = last_seq

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._channels.values())

    def publish(self, rows: Sequence[Sequence[Any]]) -> None:
        """Committed event rows, in seq order. O(len(rows)); the work happens at the flush."""
        if self.closed:
            return
        self._queued.extend(rows)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_s, self.flush)

    def flush(self) -> None:
        """Frames for what was queued, into the history and out to every channel."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, self._queued = self._queued, []
        if not rows:
            return
        frames = [Frame.committed(row) for row in rows]
        self._remember(frames)
        if self._channels:
            self._distribute(frames)

    def attach(
        self, sub: Subscriber, after: int | None
    ) -> list[Frame] | None:
        """Register `sub` for what comes after event `after` (None: from now) and return the
        events after it still in memory; None when some are only in Postgres (read them, then
        call again). Synchronous, so nothing can slip between the history and the live part."""
        if self.closed:
            raise Unavailable("the service is shutting down; reconnect shortly")
        self.flush()
        after = self.flushed if after is None else min(after, self.flushed)
        if after < self.floor:
            return None
        frames = self._history_after(after, sub.listing_id)
        sub.last_seq = after
        self._channels.setdefault(sub.listing_id, set()).add(sub)
        return frames

    def detach(self, sub: Subscriber) -> None:
        channel = self._channels.get(sub.listing_id)
        if channel is not None:
            channel.discard(sub)
            if not channel:
                del self._channels[sub.listing_id]

    def close(self) -> None:
        """End every stream (the server is stopping); later attaches are refused."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        channels, self._channels = self._channels, {}
        for subs in channels.values():
            for sub in subs:
                sub.end(ENDED)

    # --- internals --------------------------------------------------------------------------

    def _remember(self, frames: list[Frame]) -> None:
        history = self._history
        history.extend(frames)
        while len(history) > self.history_events:
            self.floor = history.popleft().seq
        self.flushed = frames[-1].seq

    def _history_after(self, after: int, listing_id: str | None) -> list[Frame]:
        """O(log n) to find the start (deque indexing is O(n/64)), then O(events after)."""
        history = self._history
        start = bisect.bisect_right(history, after, key=_seq)
        after_it = itertools.islice(history, start, None)
        if listing_id is None:
            return list(after_it)
        return [f for f in after_it if f.listing_id == listing_id]

    def _distribute(self, frames: list[Frame]) -> None:
        channels = self._channels
        by_listing: dict[str | None, list[Frame]] = {None: frames}
        if len(channels) > 1 or None not in channels:
            for frame in frames:
                if frame.listing_id in channels:
                    by_listing.setdefault(frame.listing_id, []).append(frame)
        limit = self.buffer_events
        for key, subs in list(channels.items()):
            chosen = by_listing.get(key)
            if not chosen:
                continue
            batch = Batch(chosen)
            behind = [sub for sub in subs if not sub.offer(batch, limit)]
            for sub in behind:
                subs.discard(sub)
                sub.end(DROPPED)
                self.dropped += 1
            if behind:
                log.info("slow streams dropped", extra={"streams": len(behind), "channel": key})
            if key is not None and batch.resolves:
                del channels[key]  # its streams end once they have sent the resolution
            elif not subs:
                del channels[key]


def _seq(frame: Frame) -> int:
    return frame.seq


def _release(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)
