"""A worker loop waiting on an event stops when cancelled, even if nudged at that moment."""

import asyncio

from app.waits import event_or_timeout


async def _worker(event: asyncio.Event) -> None:
    """The shape of the dispatcher's and the deadline scheduler's loops."""
    while True:
        await event_or_timeout(event, 60)
        event.clear()


async def test_a_loop_nudged_just_before_it_is_cancelled_still_stops() -> None:
    for turns in range(4):  # the cancellation lands 0 to 3 loop turns after the nudge
        event = asyncio.Event()
        worker = asyncio.create_task(_worker(event))
        await asyncio.sleep(0)
        event.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        worker.cancel()
        done, _ = await asyncio.wait([worker], timeout=10)
        assert worker in done and worker.cancelled(), f"ran on after cancel ({turns} turns)"


async def test_it_returns_when_the_event_is_set_or_the_time_is_up() -> None:
    event = asyncio.Event()
    event.set()
    await event_or_timeout(event, 60)
    await event_or_timeout(asyncio.Event(), 0.01)
