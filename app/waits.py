"""Waiting for an event with a timeout, in a worker loop that must stop when cancelled."""

import asyncio
import contextlib


async def event_or_timeout(event: asyncio.Event, seconds: float) -> None:
    """Return when `event` is set or `seconds` have passed.

    Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives after the
    event is set but before the waiting task resumes, so a worker loop nudged at the moment of
    shutdown ran on and the shutdown never ended.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
