"""The standby loop: wait for the fence, be the writer while it holds, step down, wait again.

A term as the writer runs two tasks side by side: the fence's heartbeat and the writer itself
(`start_writer`: rebuild the books, run the journal and the background writers). Whichever
ends first ends the other: a lost fence cancels the writer at once (the writer's own cleanup
then refuses what is queued), a writer that fails to start gives the fence back.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from app.fence.fence import Fence, FenceLost
from app.fence.role import Role
from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_RETRY_S = (1.0, 2.0, 5.0, 10.0)  # after a term that failed to start, before contending again


class Supervisor:
    def __init__(
        self, fence: Fence, role: Role,
        start_writer: Callable[[], AbstractAsyncContextManager[None]],
    ) -> None:
        self.fence = fence
        self.role = role
        self.start_writer = start_writer

    async def run(self) -> None:
        """Until cancelled. The first term's start failure is raised (the process should not
        come up); later ones are logged and retried, so the other instance can take over."""
        failures = 0
        while True:
            try:
                await self.fence.acquire()
                await self._term()
                failures = 0
            except Exception as error:
                if not self.role.settled.is_set():
                    raise _single(error) from None
                log.exception("taking or holding the fence failed; contending again shortly")
                failures += 1
            finally:
                await self.fence.release()
            if failures:
                await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S)) - 1])

    async def _term(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.fence.hold(), name="fence heartbeat")
                group.create_task(self._write(), name="writer")
        except* FenceLost:
            log.warning("stepped down to standby", extra={"state": self.role.state})

    async def _write(self) -> None:
        self.role.set("recovering")
        async with self.start_writer():
            self.role.set("writer")
            log.info("serving as the writer", extra={"epoch": self.fence.epoch})
            try:
                await asyncio.Future()  # until the fence is lost or the process stops
            finally:
                if self.role.writer:  # ending for another reason: refuse requests from now on
                    self.role.set("standby")


def _single(error: Exception) -> Exception:
    """The one error inside a task group's group, as a lone instance would have raised it."""
    while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@contextlib.asynccontextmanager
async def supervised(supervisor: Supervisor) -> AsyncIterator[None]:
    """Run the standby loop for the app's lifetime; enter once the first start has an outcome
    (the writer is ready, or this instance waits as a standby)."""
    task = asyncio.create_task(supervisor.run(), name="fence supervisor")
    settled = asyncio.create_task(supervisor.role.settled.wait())
    try:
        await asyncio.wait({task, settled}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the first start failed: raise its error
        yield
    finally:
        await cancel_and_wait([settled, task])
