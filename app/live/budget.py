"""How much of the service's CPU the streams may take, so that many readers never slow bidding.

Pushing one event to a thousand sockets costs more than placing the bid that made it (the bytes
go through the kernel once per reader; see BENCHMARKS.md). So the CPU time streams spend
composing and sending is metered: a token bucket, refilled with `share` of the CPU time the
process used (at least `share` of a tenth of a core, so a quiet service still streams freely).
While there are tokens a stream sends at once; past them streams queue, first come first
served, and are let through on a short tick as the bucket refills. A stream that waits too long
falls behind and the hub drops it (the client resumes with Last-Event-ID): the streams get what
is left, not the bids. CPU time, not wall time, because on a busy machine the process gets less
than a core, and a wall-time share would then take more of what it gets.
"""

import asyncio
import time
from collections import deque

_TICK_S = 0.005
_BURST_S = 0.02  # the bucket holds this much CPU time
_FLOOR = 0.1  # refill at least share × this × wall time
#: Charged on top of what a turn measures (composing and sending, in the loop's thread):
#: waking the stream's task, which nothing times; a model of the send when the send waited for
#: a slow client (the thread then ran other tasks, so its time is not the send's); and the
#: socket writes that happen later, outside the turn (uvloop defers small writes to the end of
#: the loop turn, and writes what the socket buffer could not take when it drains). Figures from
#: the development machine's loopback (BENCHMARKS.md).
TURN_S = 4e-6
SEND_S = 8e-6
SEND_S_PER_BYTE = 0.6e-9
LATER_WRITE_S_PER_BYTE = 0.4e-9


class Budget:
    def __init__(self, share: float) -> None:
        self.share = share
        self.tokens = _BURST_S
        self._cpu = time.process_time()
        self._wall = time.monotonic()
        self._estimate = 0.0001  #: a recent turn's cost, reserved when a waiter is let through
        self._queue: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def unlimited(self) -> bool:
        return self.share >= 1.0

    async def acquire(self) -> None:
        """Wait for a turn, then `spend` it. O(1)."""
        if self.unlimited:
            return
        self._refill()
        if self.tokens > 0 and not self._queue:
            self.tokens -= self._estimate
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        self._schedule()
        await waiter

    def spend(self, cpu_s: float, sent_bytes: int, send_timed: bool) -> None:
        """After a turn: the CPU seconds measured, the bytes sent, whether the send was timed."""
        cpu_s += TURN_S
        if not send_timed:
            cpu_s += SEND_S + sent_bytes * SEND_S_PER_BYTE
        else:
            cpu_s += sent_bytes * LATER_WRITE_S_PER_BYTE
        self.tokens += self._estimate - cpu_s
        self._estimate += (cpu_s - self._estimate) * 0.1

    def _refill(self) -> None:
        cpu, wall = time.process_time(), time.monotonic()
        used = max(cpu - self._cpu, (wall - self._wall) * _FLOOR)
        self.tokens = min(_BURST_S, self.tokens + used * self.share)
        self._cpu, self._wall = cpu, wall

    def _schedule(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(_TICK_S, self._release)

    def _release(self) -> None:
        self._timer = None
        self._refill()
        queue = self._queue
        while queue and self.tokens > 0:
            waiter = queue.popleft()
            if not waiter.done():  # a cancelled waiter (client gone) takes nothing
                waiter.set_result(None)
                self.tokens -= self._estimate
        if queue:
            self._schedule()
