"""Stopping background tasks for certain."""

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable["asyncio.Task[Any]"], every_s: float = 0.5) -> None:
    """Cancel the tasks and wait until each has ended, cancelling again as needed.

    One cancel is not always enough on Python 3.11: `asyncio.wait_for` returns normally when
    its inner wait completes in the same loop turn as the cancel (CPython gh-86296, fixed in
    3.12), and a worker looping over `wait_for` then carries on forever.
    """
    pending = [task for task in tasks if not task.done()]
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=every_s)
        pending = [task for task in pending if not task.done()]
