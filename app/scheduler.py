"""One task for every deadline: sleep until the earliest `closes_at`, then advance the clock.

No task or timer per listing: the engine keeps all deadlines in one ordered queue, and a new
listing (which may close sooner) wakes this task through `market.deadline_changed`.
"""

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from app.fence.fence import Fence
from app.market import Market
from app.waits import event_or_timeout
from app.webhooks.store import WebhookStore

log = logging.getLogger(__name__)

_MAX_SLEEP_S = 1.0  # also bounds how late a deadline fires after a recovery swapped engines


async def run_deadlines(market: Market) -> None:
    while True:
        deadline = market.engine.next_deadline()
        timeout = _MAX_SLEEP_S
        if deadline is not None:
            timeout = min(_MAX_SLEEP_S, max(0.0, deadline / 1e6 - time.time()))
        await event_or_timeout(market.deadline_changed, timeout)
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


async def run_webhook_retention(
    store: WebhookStore, retention_s: float, every_s: float = 3600, batch: int = 500
) -> None:
    """Delete webhook attempts and settled deliveries older than `retention_s`, a small batch
    per statement (short locks, no bloat spike), pausing between batches. Events stay."""
    while True:
        cutoff = datetime.now(UTC) - timedelta(seconds=retention_s)
        try:
            while await store.delete_settled_before(cutoff, batch):
                await asyncio.sleep(0.05)
        except Exception as error:  # postgres away: try again next round
            log.warning("webhook retention round failed", extra={"error": repr(error)})
        await asyncio.sleep(every_s)
