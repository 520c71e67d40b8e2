"""Stopping background tasks: a cancellation swallowed once is sent again."""

import asyncio

from app.tasks import cancel_and_wait


async def _swallows_the_first_cancel(cancels: list[int]) -> None:
    """What a worker looping over Python 3.11's `wait_for` does when the race hits it."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancels.append(1)
            if len(cancels) > 1:
                raise


async def test_a_task_that_swallowed_a_cancellation_is_cancelled_again_until_it_ends() -> None:
    cancels: list[int] = []
    task = asyncio.create_task(_swallows_the_first_cancel(cancels))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], every_s=0.01), 5)
    assert task.cancelled() and len(cancels) == 2


async def test_tasks_that_already_ended_are_left_alone() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait([done])
    assert not done.cancelled()
