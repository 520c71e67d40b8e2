"""Several deliveries in flight per endpoint, woken by commits, and old delivery rows retired."""

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from app.scheduler import run_webhook_retention
from app.webhooks.store import WebhookStore
from tests.integration.conftest import running_service
from tests.integration.receiver import Receiver, serving
from tests.integration.test_webhooks import FAST, bid, open_listing, subscribe
from tests.waiting import eventually


async def test_one_endpoint_gets_up_to_its_concurrency_in_flight_at_once(
    database_url: str,
) -> None:
    gate = asyncio.Event()
    held = {**FAST, "webhook_concurrency": 4, "webhook_timeout_s": 60.0}  # none times out
    async with (
        serving(Receiver(gate=gate)) as receiver,
        running_service(database_url, **held) as (_, client),
    ):
        await subscribe(client, receiver, ["bid.placed"])
        listing = await open_listing(client, amount=1_000_000, duration_s=600)
        for i in range(10):
            await bid(client, listing, 5_000, 1000 + i)

        async def four_held() -> bool:
            return receiver.in_flight == 4

        await eventually(four_held)
        await asyncio.sleep(0.3)  # time for a fifth to arrive, were the limit not kept
        assert receiver.most_in_flight == 4
        gate.set()
        await receiver.until_delivered(10)
    assert receiver.most_in_flight == 4
    assert len({d["seq"] for d in receiver.delivered}) == 10, "each event once (order may vary)"
    assert receiver.bad_signatures == 0


async def test_a_commit_wakes_the_dispatcher_without_waiting_for_a_poll(
    database_url: str,
) -> None:
    slow_poll = {**FAST, "webhook_poll_s": 3600.0}
    async with (
        serving(Receiver()) as receiver,
        running_service(database_url, **slow_poll) as (_, client),
    ):
        await subscribe(client, receiver, ["bid.placed"])
        listing = await open_listing(client, duration_s=600)
        for i in range(3):
            await bid(client, listing, 5_000, 1000 + i)

            async def arrived(n: int = i + 1) -> bool:
                return len(receiver.delivered) == n

            await eventually(arrived)


async def test_old_attempts_and_settled_deliveries_are_deleted_in_batches_and_events_stay(
    database_url: str,
) -> None:
    async with serving(Receiver()) as receiver:
        async with running_service(database_url, **FAST) as (_, client):
            endpoint = await subscribe(client, receiver, ["bid.placed"])
            listing = await open_listing(client, duration_s=600)
            for i in range(7):
                await bid(client, listing, 5_000, 1000 + i)

            async def all_delivered() -> bool:
                return len(receiver.delivered) == 7

            await eventually(all_delivered)
    conn = await asyncpg.connect(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        events = await conn.fetchval("SELECT count(*) FROM events")
        old = datetime.now(UTC) - timedelta(days=31)
        ids = [r["id"] for r in await conn.fetch(
            "SELECT id FROM webhook_deliveries ORDER BY event_seq"
        )]
        # Five old ones: delivered, failed, cancelled, and two still pending; two recent.
        statuses = ["delivered", "failed", "cancelled", "pending", "pending"]
        for delivery_id, status in zip(ids, statuses, strict=False):
            await conn.execute(
                "UPDATE webhook_deliveries SET created_at = $2, status = $3 WHERE id = $1",
                delivery_id, old, status,
            )
            await conn.execute(
                "UPDATE webhook_attempts SET attempted_at = $2 WHERE delivery_id = $1",
                delivery_id, old,
            )
        await conn.execute(
            """INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms)
               SELECT $1, $2, 500, 1 FROM generate_series(1, 4)""",
            ids[0], old,
        )
        task = asyncio.create_task(
            run_webhook_retention(WebhookStore(pool), 30 * 86_400, every_s=3600, batch=2)
        )

        async def retired() -> bool:
            return bool(await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 4)

        await eventually(retired)
        task.cancel()
        kept = await conn.fetch("SELECT id, status FROM webhook_deliveries ORDER BY event_seq")
        assert [r["id"] for r in kept] == ids[3:]
        assert await conn.fetchval("SELECT count(*) FROM webhook_attempts") == 2, "the recent"
        assert await conn.fetchval("SELECT count(*) FROM events") == events
        assert endpoint == str(await conn.fetchval("SELECT id FROM webhook_endpoints"))
    finally:
        await pool.close()
        await conn.close()
