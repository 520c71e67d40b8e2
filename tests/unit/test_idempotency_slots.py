"""The in-flight slot: a duplicate's record lookup can never be older than the first's action."""

import asyncio
from typing import Any, cast

from asyncpg import Record

from app.idempotency import Idempotency, IdempotentRequest, Reply
from app.store import Store


class _SlowSnapshots(Store):
    """Each lookup sees the records as they were when it began, and ends when released."""

    def __init__(self) -> None:
        super().__init__(cast(Any, None))
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.lookups: list[asyncio.Event] = []

    async def idempotency_record(self, scope: str, key: str) -> Record | None:
        snapshot = self.records.get((scope, key))
        release = asyncio.Event()
        self.lookups.append(release)
        await release.wait()
        return cast(Record, snapshot)


async def test_a_duplicate_whose_lookup_began_before_the_first_committed_replays_it() -> None:
    store = _SlowSnapshots()
    idempotency = Idempotency(store)
    request = IdempotentRequest.of("lender:lena", "k", "POST", "/v1/x", b"{}")
    acted: list[str] = []

    def action(name: str) -> Any:
        async def act() -> Reply:
            acted.append(name)
            reply = Reply(201, name.encode())
            store.records[("lender:lena", "k")] = {
                "request_hash": request.request_hash, "status": 201, "body": reply.body,
            }
            return reply
        return act

    first = asyncio.create_task(idempotency.run(request, action("first")))
    second = asyncio.create_task(idempotency.run(request, action("second")))
    while not store.lookups:
        await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)  # the second request gets every chance to look up too
    store.lookups[0].set()  # the first lookup ends; any the second began meanwhile waits
    while not first.done():
        await asyncio.sleep(0)
    while not second.done():
        for release in store.lookups:
            release.set()
        await asyncio.sleep(0)
    assert acted == ["first"]
    assert (await first).replayed is False
    assert (await second).replayed is True and (await second).body == b"first"
