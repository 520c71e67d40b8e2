"""One task for every deadline: sleep until the earliest `closes_at`, then advance the clock.

No task or timer per listing: the engine keeps all deadlines in one ordered queue, and a new
listing (which may close sooner) wakes this task through `market.deadline_changed`.
"""

import asyncio
import time
from datetime import UTC, datetime, timedelta

from app.fence.fence import Fence
from app.market import Market

_MAX_SLEEP_S = 1.0  # also bounds how late a deadline fires after a recovery swapped engines


async def run_deadlines(market: Market) -> None:
    while True:
        deadline = market.engine.next_deadline()
        timeout = _MAX_SLEEP_S
        if deadline is not None:
            timeout = min(_MAX_SLEEP_S, max(0.0, deadline / 1e6 - time.time()))
        try:
            await asyncio.wait_for(market.deadline_changed.wait(), timeout)
        except TimeoutError:
            pass
        market.deadline_changed.clear()
        market.advance_clock()


async def run_housekeeping(
    market: Market, fence: Fence, idempotency_ttl_s: int, every_s: float = 600
) -> None:
    """Forget idempotency records older than the TTL (at least 24 h by the spec)."""
    while True:
        await asyncio.sleep(every_s)
        cutoff = datetime.now(UTC) - timedelta(seconds=idempotency_ttl_s)
        try:
            async with fence.transaction(market.store.pool) as conn:
                await market.store.delete_idempotency_before(cutoff, conn)
        except Exception:  # postgres away, or fenced out (the term is ending): next round
            continue
