"""A stream's place in the hub, and the batches the hub offers it."""

import asyncio
import time
from typing import Any

from app.live.frames import Frame, Viewer, join

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
        "listing_id", "viewer", "last_seq", "last_sent", "beat_due", "state", "sending", "task",
        "_pending", "_backlog", "_waiter",
    )

    def __init__(self, listing_id: str | None, viewer: Viewer) -> None:
        self.listing_id = listing_id
        self.viewer = viewer
        self.last_seq = 0  #: the last event seq handed to the stream
        self.last_sent = time.monotonic()  #: when the stream last sent something
        self.beat_due = False  #: idle for long enough: a heartbeat comment is due
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
        """Live with nothing to send."""
        return self.state == LIVE and not self._pending

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[Batch]:
        pending, self._pending, self._backlog = self._pending, [], 0
        return pending

    async def wait(self) -> None:
        """Until a batch is offered, a heartbeat is due, or the stream ends."""
        if self._pending or self.beat_due or self.state != LIVE:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def beat(self) -> None:
        self.beat_due = True
        self._wake()

    def end(self, state: str) -> None:
        self.state = state
        self._pending, self._backlog = [], 0
        self._wake()
        if self.sending and self.task is not None:
            self.task.cancel()  # stuck in a send to a client that does not read: cut it off

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
