"""The webhook dispatcher stops when cancelled, even at the moment a commit wakes it."""

import asyncio
from typing import Any

from cryptography.fernet import Fernet

from app.metrics import Metrics
from app.webhooks.dispatcher import DispatchConfig, Dispatcher
from app.webhooks.sealing import SecretBox


class IdleStore:
    """No events, nothing due."""

    async def fan_out(self, batch: int) -> tuple[int, int]:
        return 0, 0

    async def claim(self, *args: Any) -> list[Any]:
        return []


async def test_a_cancel_that_arrives_with_a_wakeup_still_stops_the_dispatcher() -> None:
    config = DispatchConfig([1.0], 1.0, poll_s=60.0, concurrency=8, max_in_flight=64,
                            allow_private=False)
    for _ in range(10):
        dispatcher = Dispatcher(
            IdleStore(), SecretBox([Fernet.generate_key().decode()]),  # type: ignore[arg-type]
            Metrics(), config,
        )
        task = asyncio.create_task(dispatcher.run())
        await asyncio.sleep(0.01)  # now waiting for a wakeup
        dispatcher.nudge()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done, "the cancellation was swallowed: shutdown would hang"
