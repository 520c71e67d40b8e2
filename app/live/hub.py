"""The hub: committed events fanned out to stream subscribers, after the commit, in batches.

`publish` runs in the journal's commit callback and only queues the rows, so the bid's path
pays O(events) list appends. Every `flush_s` the queued rows become frames, join the in-memory
history (the last `history_events` events, for resuming), and go to each channel (every event,
or one listing's) as one `Batch` shared by the channel's subscribers: one rendering per event
and audience, one joined payload per batch and audience, whatever the number of subscribers.
Each subscriber's own task sends what it was offered, taking turns from a CPU budget
(`budget.py`); one whose backlog passes `buffer_events` is dropped (closed, to resume with
Last-Event-ID), so a slow reader costs nothing but itself and readers together cannot starve
the bids.
"""

import asyncio
import bisect
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from app.errors import Unavailable
from app.live.budget import Budget
from app.live.frames import Frame
from app.live.subscriber import DROPPED, ENDED, Batch, Subscriber

log = logging.getLogger(__name__)

#: The flush waits at least this long per stream attached: a flush wakes every stream, and a
#: stream's turn costs some 10 µs whatever it sends, so a thousand streams flush 5 times a second.
_FLUSH_PER_STREAM_S = 0.0002
_MAX_FLUSH_S = 1.0
_HISTORY_READERS = 2


class Hub:
    def __init__(
        self,
        flush_s: float,
        buffer_events: int,
        history_events: int,
        heartbeat_s: float,
        budget: Budget,
    ) -> None:
        self.flush_s = flush_s
        self.heartbeat_s = heartbeat_s
        self.budget = budget
        self.buffer_events = buffer_events
        self.history_events = history_events
        self.closed = False
        #: Every event with a seq in (floor, flushed] is in `_history`; older ones are in Postgres.
        self.floor = 0
        self.flushed = 0
        self.dropped = 0
        self._queued: list[Sequence[Any]] = []
        self.subscribers = 0
        self._timer: asyncio.TimerHandle | None = None
        self._beats: asyncio.TimerHandle | None = None
        self._history: deque[Frame] = deque()
        self._channels: dict[str | None, set[Subscriber]] = {}
        #: listing id -> seq of its listing.opened, for the open listings opened since start
        self._opened: dict[str | None, int] = {}
        #: Reading history from Postgres, a few streams at a time: a crowd reconnecting at once
        #: must not take the database from the journal writer.
        self.history_reads = asyncio.Semaphore(_HISTORY_READERS)

    def start(self, last_seq: int) -> None:
        """`last_seq`: the highest event seq committed before the first publish."""
        self.floor = self.flushed = last_seq
        self._beats = asyncio.get_running_loop().call_later(self.heartbeat_s / 4, self._sweep)

    def publish(self, rows: Sequence[Sequence[Any]]) -> None:
        """Committed event rows, in seq order. O(len(rows)); the work happens at the flush."""
        if self.closed:
            return
        self._queued.extend(rows)
        if self._timer is None:
            delay = max(self.flush_s, min(_MAX_FLUSH_S, self.subscribers * _FLUSH_PER_STREAM_S))
            self._timer = asyncio.get_running_loop().call_later(delay, self.flush)

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
        events after it still in memory, of every listing (the caller keeps its own, in its
        metered turn); None when some are only in Postgres (read them, then call again).
        Synchronous, so nothing can slip between the history and the live part."""
        if self.closed:
            raise Unavailable("the service is shutting down; reconnect shortly")
        self.flush()
        after = self.flushed if after is None else min(after, self.flushed)
        if after < self.floor:
            return None
        frames = self._history_after(after)
        sub.last_seq = after
        self._channels.setdefault(sub.listing_id, set()).add(sub)
        self.subscribers += 1
        return frames

    def first_seq(self, listing_id: str) -> int | None:
        """The seq of the listing's first event, if it opened since the hub started and is
        open: its stream from the start need not look at anything older."""
        return self._opened.get(listing_id)

    def detach(self, sub: Subscriber) -> None:
        channel = self._channels.get(sub.listing_id)
        if channel is not None and sub in channel:
            channel.discard(sub)
            self.subscribers -= 1
            if not channel:
                del self._channels[sub.listing_id]

    def close(self) -> None:
        """End every stream (the server is stopping); later attaches are refused."""
        self.closed = True
        for timer in (self._timer, self._beats):
            if timer is not None:
                timer.cancel()
        self._timer = self._beats = None
        channels, self._channels = self._channels, {}
        self.subscribers = 0
        for subs in channels.values():
            for sub in subs:
                sub.end(ENDED)

    # --- internals --------------------------------------------------------------------------

    def _remember(self, frames: list[Frame]) -> None:
        history, opened = self._history, self._opened
        history.extend(frames)
        for frame in frames:
            if frame.type == "listing.opened":
                opened[frame.listing_id] = frame.seq
            elif frame.resolves:
                opened.pop(frame.listing_id, None)
        while len(history) > self.history_events:
            self.floor = history.popleft().seq
        self.flushed = frames[-1].seq

    def _history_after(self, after: int) -> list[Frame]:
        """O(log n) to find the start (deque indexing is O(n/64)), then a C-speed copy."""
        history = self._history
        return list(itertools.islice(history, bisect.bisect_right(history, after, key=_seq), None))

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
            self.dropped += len(behind)
            if behind:
                log.info("slow streams dropped", extra={"streams": len(behind), "channel": key})
            if key is not None and batch.resolves:
                del channels[key]  # its streams end once they have sent the resolution
            elif not subs:
                del channels[key]
        self.subscribers = sum(len(subs) for subs in channels.values())

    def _sweep(self) -> None:
        """Every quarter heartbeat: wake the streams idle for three quarters of one, so none
        is silent longer than `heartbeat_s`. O(streams), a few times a minute by default."""
        due = time.monotonic() - self.heartbeat_s * 0.75
        for subs in self._channels.values():
            for sub in subs:
                if sub.last_sent <= due and sub.idle:
                    sub.beat()
        self._beats = asyncio.get_running_loop().call_later(self.heartbeat_s / 4, self._sweep)


def _seq(frame: Frame) -> int:
    return frame.seq
