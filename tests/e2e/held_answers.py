"""Test-only entry point: `python -m tests.e2e.held_answers serve ...` is `loan-auction serve`,
except that a write whose Idempotency-Key starts with HOLD_PREFIX is answered HOLD_S seconds
after its commit. The crash drill sends one such write, sees its idempotency record committed in
Postgres, and kills the process: the kill lands after the commit and before the answer every
time, so the retry must be replayed from the stored record.

Nothing in `app/` imports this or has a setting for it: only a test can start the service this
way. It wraps `Market._act`, which every market write (open, bid, accept, cancel, deposit,
withdrawal) goes through; a new kind of write that does not must be held its own way.
"""

import asyncio
from unittest import mock

from app import cli
from app.idempotency import IdempotentRequest, Reply
from app.market import Action, Guard, Market

HOLD_PREFIX = "hold-after-commit-"
HOLD_S = 60.0  # far longer than the drill waits before it kills

_act = Market._act


async def _held(
    self: Market, act: Action, idem: IdempotentRequest | None, listing_id: str | None,
    guard: Guard | None = None,
) -> Reply:
    reply = await _act(self, act, idem, listing_id, guard)  # returns once committed
    if idem is not None and idem.key.startswith(HOLD_PREFIX):
        await asyncio.sleep(HOLD_S)
    return reply


if __name__ == "__main__":
    with mock.patch.object(Market, "_act", _held):
        cli.main()
