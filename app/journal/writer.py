"""The journal writer: the one writer that turns what the engine decided into Postgres rows.

Group commit: entries submitted while a batch is in flight ride together in the next one, so
a burst of bids costs a commit or two, not one transaction each. On the lane the next batch
leaves once the event loop has run the requests it had ready at the last commit, and carries at
most half of what waits and of the batch just committed, counted together and rounded up; the
rest leaves in the batch after (`_next_on_lane`). Entries are written in submission order,
which is engine order, so event `seq` order is the order things happened. A request is answered
only after its entry's batch commits.

Two connections, one batch at a time, so the order holds across them: batches that only append
(bids, their events, ledger entries, balances, idempotency keys) go on the libpq lane
(`lane.py`), which the writer polls whenever an entry arrives; anything else (listings opened
or resolved, loans, standing orders) goes in an asyncpg transaction from the writer's task.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import orjson

from app.fence.fence import Fence
from app.journal import statements as sql
from app.journal.entry import BatchStats, Entry
from app.journal.transaction import PoolPath

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from app.journal.lane import AppendLane  # psycopg loads with the first lane (~80 ms)

Batch = list[tuple[Entry, "asyncio.Future[None]"]]
#: A statement takes a few hundred µs at the least: polling sooner only costs a syscall.
_POLL_AFTER_S = 0.0003
#: After a lane failed to open, batches take the task's path this long before the next try.
_LANE_RETRY_S = 5.0


@dataclass(slots=True)
class _OnLane:
    """The batch the lane is running (its events numbered and chained), and the chain head it
    leaves once committed."""

    batch: Batch
    merged: Entry
    head: sql.Head
    sent_at: float
    deadline: asyncio.TimerHandle


class JournalWriter:
    """Owns the write path to Postgres. `submit` is called from the event loop, in engine order."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        max_batch: int,
        max_rows: int,
        on_commit: Callable[[Entry, BatchStats], None],
        on_failure: Callable[[BaseException], Awaitable[None]],
        *,
        fence: Fence,
        open_lane: "Callable[[], AppendLane] | None" = None,
        timeout_s: float = 30.0,
    ) -> None:
        #: Server sessions dropped with a statement whose outcome is unknown (past its deadline,
        #: the connection failed, any failure on the task's path): it may still commit, so the
        #: rebuild ends them before it reads (`recovery.end_sessions`), and forgets them once gone.
        self.abandoned_sessions: set[sql.Session] = set()
        self._pool_path = PoolPath(pool, fence, self.abandoned_sessions)
        self._fence = fence
        self._closed: BaseException | None = None
        self._max_batch = max_batch
        self._max_rows = max_rows
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._open_lane = open_lane
        self._timeout_s = timeout_s
        self._pending: Batch = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        #: (seq, hash) of the newest event committed: the audit chain's head. Read from
        #: Postgres after a start or a failed batch.
        self._head: sql.Head | None = None
        self._lane: AppendLane | None = None
        self._on_lane: _OnLane | None = None
        #: A batch taken for the lane that needs the task's transaction instead.
        self._handed: tuple[Batch, Entry] | None = None
        self._lane_retry_at = 0.0  # monotonic: no new lane before then, after one failed to open
        self._writing = False  # the task has a batch in flight
        #: After a failed batch: `on_failure`, then the queue failed. Held (the loop keeps only a
        #: weak reference); nothing goes out until it is done.
        self._recovery: asyncio.Task[None] | None = None
        #: The lane's next batch, due once the loop has run what was ready at the last commit.
        self._gathering: asyncio.Handle | None = None
        self._last_on_lane = 0  # entries in the lane's last committed batch

    @property
    def recovering(self) -> bool:
        """A batch failed and the market has not yet been told (no batch goes out meanwhile)."""
        return self._recovery is not None and not self._recovery.done()

    def submit(self, entry: Entry) -> asyncio.Future[None]:
        """Queue an entry; the future completes when it is committed (or fails)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed is not None:
            future.set_exception(self._closed)
            return future
        self._pending.append((entry, future))
        self._idle.clear()
        on_lane = self._on_lane
        if on_lane is None:
            if self._gathering is None:
                self._wakeup.set()
        elif time.perf_counter() - on_lane.sent_at > _POLL_AFTER_S:
            self._poll_lane()
        return future

    def fail_pending(self, error: BaseException) -> None:
        """Fail everything not yet written: it was computed on state Postgres does not have."""
        pending, self._pending = self._pending, []
        _fail_futures(pending, error)
        self._idle_if_done()

    def close(self, error: BaseException) -> None:
        """Take no more writes: fail what is queued and everything submitted from now on.
        A batch in flight finishes (or fails) on its own; `flushed` waits for it."""
        self._closed = error
        self.fail_pending(error)
        self._wakeup.set()

    async def flushed(self) -> None:
        """Wait until every submitted entry is committed or failed."""
        await self._idle.wait()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            on_lane, self._on_lane = self._on_lane, None
            # Stopped mid-statement: the outcome is unknown, but no session need end here: the
            # next term bumps the fence's epoch before it rebuilds, and the statement's fence
            # check then finds nothing to write for.
            if on_lane is not None:
                on_lane.deadline.cancel()
                _fail_futures(on_lane.batch, _stopped())
            handed, self._handed = self._handed, None
            if handed is not None:
                _fail_futures(handed[0], _stopped())
            self.close(_stopped())  # nothing would write what is queued, or comes later
            if self._recovery is not None:  # part of the task's work, as when it awaited it
                self._recovery.cancel()
            self._drop_lane()  # a gathering still due then finds no lane, its entries failed above
            await self._pool_path.release()

    async def _run(self) -> None:
        # No timed wait for stragglers: the next batch goes out as soon as the last one commits
        # (on the lane, after the loop's turn: `_gathered`). A 1 ms gather here cost a third of
        # the bid rate once a batch took one round trip (a sleep on a busy loop lasts ~3.7 ms;
        # BENCHMARKS.md, issue 14 third pass).
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._on_lane is None and self._gathering is None and not self.recovering:
                handed, self._handed = self._handed, None
                if handed is None and not self._pending:
                    break
                batch, merged = handed or self._take()
                self._writing = True  # from here: opening a lane awaits too
                try:
                    if handed is None and merged.appends_only() and await self._lane_ready():
                        self._send_on_lane(batch, merged)
                        break
                    await self._write_batch(batch, merged)
                except asyncio.CancelledError:
                    _fail_futures(batch, _stopped())
                    raise
                finally:
                    self._writing = False
            self._idle_if_done()

    def _take(self, limit: int | None = None) -> tuple[Batch, Entry]:
        """The oldest pending entries, up to `max_batch` of them (and `limit`, if given) and
        `max_rows` rows, but never fewer than one entry: a backlog of big entries commits in
        bounded transactions."""
        rows = taken = 0
        most = self._max_batch if limit is None else min(limit, self._max_batch)
        for entry, _ in self._pending[: max(1, most)]:
            rows += entry.rows()
            if taken and rows > self._max_rows:
                break
            taken += 1
        batch = self._pending[:taken]
        del self._pending[:taken]
        return batch, Entry.merge(entry for entry, _ in batch)

    def _idle_if_done(self) -> None:
        if not (self._pending or self._on_lane or self._handed or self._writing):
            self._idle.set()

    # --- the task's path: asyncpg (`transaction.py`) -------------------------------------------

    async def _write_batch(self, batch: Batch, merged: Entry) -> None:
        started = time.perf_counter()
        try:
            self._head = await self._pool_path.write(merged, self._head)
        except Exception as error:  # any failure: nothing in this batch is durable
            self._fail(batch, error)
            return
        self._committed(batch, merged, started, on_lane=False)

    # --- the lane: driven from `submit` and the socket's readiness, no task in between ---------

    async def _lane_ready(self) -> bool:
        """A lane is open (opened now if need be) and the chain head is known. A head read
        means the last batch on the task's connection reached Postgres, so it is worth
        (re)connecting; until then batches take the task's path."""
        if self._head is None:  # a failed batch forgot it, lane or not: the task reads it
            return False
        if self._lane is not None:
            return True
        now = time.monotonic()
        if self._open_lane is None or now < self._lane_retry_at:
            return False
        try:
            lane = await asyncio.get_running_loop().run_in_executor(None, self._open_lane)
        except Exception as error:  # noqa: BLE001 - the task's path carries on without it
            log.warning("journal lane unavailable", extra={"error": repr(error)})
            self._lane_retry_at = now + _LANE_RETRY_S
            return False
        asyncio.get_running_loop().add_reader(lane.socket, self._lane_readable)
        self._lane = lane
        return True

    def _send_on_lane(self, batch: Batch, merged: Entry) -> None:
        assert self._lane is not None
        started = time.perf_counter()
        epoch = self._fence.epoch
        try:  # encoding too: a row it cannot take fails the batch, as on the task's path
            assert self._head is not None  # `_lane_ready` checked it
            events, head = sql.chained(self._head, merged.events)
            params = [None if epoch is None else str(epoch).encode()]
            params += [orjson.dumps(rows) for rows in sql.append_rows(merged, events)]
            sent = self._lane.send(params)
        except Exception as error:  # noqa: BLE001 - any failure: the batch is not durable
            self._abandon_lane()  # part of the statement may have gone out
            self._fail(batch, error)
            return
        if not sent:  # the rest as the socket takes it; the deadline below bounds the wait
            asyncio.get_running_loop().add_writer(self._lane.socket, self._lane_writable)
        merged.events = events  # only `on_commit` reads it, and only if this batch commits
        deadline = asyncio.get_running_loop().call_later(self._timeout_s, self._lane_timed_out)
        self._on_lane = _OnLane(batch, merged, head, started, deadline)

    def _lane_writable(self) -> None:
        lane = self._lane
        assert lane is not None  # dropping the lane removes this callback
        try:
            sent = lane.flush()
        except Exception as error:  # noqa: BLE001 - any failure: the batch is not durable
            self._lane_failed(error)
            return
        if sent:
            asyncio.get_running_loop().remove_writer(lane.socket)

    def _lane_readable(self) -> None:
        if self._on_lane is not None:
            self._poll_lane()
            return
        try:
            assert self._lane is not None
            self._lane.drain()
        except Exception as error:  # noqa: BLE001 - the session ended: reconnect when needed
            log.warning("journal lane closed", extra={"error": repr(error)})
            self._drop_lane()

    def _poll_lane(self) -> None:
        on_lane, lane = self._on_lane, self._lane
        assert on_lane is not None and lane is not None
        try:
            found = lane.poll()
            if found is None:
                return
            self._fence.confirm(bool(found))
        except Exception as error:  # noqa: BLE001 - any failure: the batch is not durable
            self._lane_failed(error)
            return
        self._on_lane = None
        self._last_on_lane = len(on_lane.batch)
        on_lane.deadline.cancel()
        self._head = on_lane.head
        self._committed(on_lane.batch, on_lane.merged, on_lane.sent_at, on_lane=True)
        # Answered at once; the next batch (or, with none, going idle) after the loop's turn.
        self._gathering = asyncio.get_running_loop().call_soon(self._gathered)

    def _gathered(self) -> None:
        """The loop has run the requests that were ready at the last commit, the ones it woke
        included: their entries join the batch (up to `_next_on_lane`'s limit). Sent at the
        commit itself, batches averaged 12-14 bids under bench/burst.py, 32 this way, and
        Postgres spends ~190 µs of CPU on a batch before its first row (BENCHMARKS.md, issue 14
        fifth pass)."""
        self._gathering = None
        if self._lane is None:  # the session ended meanwhile: the task opens another
            self._wakeup.set()
            return
        self._next_on_lane()

    def _next_on_lane(self) -> None:
        """Send the oldest pending entries at once, at most half of them and of the batch that
        just committed, counted together and rounded up; a batch that does not only append goes
        to the task. What stays pending leaves in the next batch (the next limit is never
        smaller than what stayed), unless `max_batch` or `max_rows` hold it back.

        Callers that wait for their answer before they send again fall into two cohorts, one
        committing while the other's requests are handled. Two cohorts of 60 and 4 left the
        server idle while the 60 committed, and kept those sizes for dozens of batches; the
        limit evens them out (60 committed and 4 waiting: the 4 leave, then 32 of the 60, then
        the other 28 with the 4), and two of 32 keep it busy (BENCHMARKS.md, issue 14 tenth
        pass). The cost: entries that arrive while a small batch commits can wait one commit
        more (1 committed and 63 waiting leave as 32, then 31)."""
        if not self._pending:
            self._wakeup.set()  # the task marks the writer idle
            return
        batch, merged = self._take((self._last_on_lane + len(self._pending) + 1) // 2)
        if merged.appends_only():
            self._send_on_lane(batch, merged)
        else:
            self._handed = batch, merged
            self._wakeup.set()

    def _lane_timed_out(self) -> None:
        self._lane_failed(TimeoutError(f"no commit within {self._timeout_s} s"))

    def _lane_failed(self, error: BaseException) -> None:
        on_lane, self._on_lane = self._on_lane, None
        assert on_lane is not None
        on_lane.deadline.cancel()
        self._abandon_lane()  # a session that failed a statement may be in any state: a new one
        self._fail(on_lane.batch, error)

    def _abandon_lane(self) -> None:
        """Drop the lane with its statement's outcome unknown. Closing the session does not stop
        a statement the server runs (waiting for a lock, say) or has yet to read (the session
        hung): either may commit later, so the session is left for the rebuild to end."""
        assert self._lane is not None
        self.abandoned_sessions.add((self._lane.backend_pid, self._lane.backend_start))
        self._drop_lane()

    def _drop_lane(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(lane.socket)
            loop.remove_writer(lane.socket)  # a batch the socket had not taken all of
            lane.close()

    # --- outcomes -----------------------------------------------------------------------------

    def _committed(self, batch: Batch, merged: Entry, started: float, *, on_lane: bool) -> None:
        seconds = time.perf_counter() - started
        self._on_commit(merged, BatchStats(len(batch), seconds, on_lane))
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    def _fail(self, batch: Batch, error: BaseException) -> None:
        """Nothing in `batch` is durable, and what is pending was computed on top of it: fail
        both, then hold every write until the market has rebuilt from Postgres."""
        self._head = None
        log.error("journal batch failed", extra={"entries": len(batch), "error": repr(error)})
        _fail_futures(batch, error)
        handed, self._handed = self._handed, None
        if handed is not None:
            _fail_futures(handed[0], error)
        self.fail_pending(error)
        self._recovery = asyncio.get_running_loop().create_task(
            self._recover(error), name="journal-recovery"
        )

    async def _recover(self, error: BaseException) -> None:
        try:
            await self._on_failure(error)
        finally:
            # Submitted before the market heard (this task's first turn): computed on the batch
            # that failed, so it fails too, as when `on_failure` ran in the same step.
            self.fail_pending(error)
            self._wakeup.set()  # the task resumes after this one is done


def _stopped() -> RuntimeError:
    return RuntimeError("the journal stopped")


def _fail_futures(batch: Batch, error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
