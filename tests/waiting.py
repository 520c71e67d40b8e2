"""Bounded polling, shared by the integration and e2e tiers."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None | Literal[False]]], seconds: float = 10,
    what: str = "condition", every: float = 0.05,
) -> T:
    """Poll `probe` until it returns something other than None or False, and return that; fail
    after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        assert time.monotonic() < deadline, f"{what}: not reached within {seconds} s"
        await asyncio.sleep(every)
