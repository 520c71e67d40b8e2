"""While no webhook endpoint is enabled the dispatcher does not fan out after every commit (only
every `poll_s`), so its cursor lags the event log. Adding an endpoint moves the cursor to the
newest event first: the new endpoint gets the events committed after it, as before."""

from typing import Any

import asyncpg

from tests.integration.conftest import running_service
from tests.integration.receiver import Receiver, serving
from tests.integration.test_webhooks import FAST, bid, open_listing, subscribe
from tests.waiting import eventually

#: No poll during the test: only commits (and adding an endpoint) trigger a fan-out.
NO_POLL: dict[str, Any] = {**FAST, "webhook_poll_s": 60.0}


async def test_an_endpoint_added_after_events_nobody_wanted_gets_only_the_later_ones(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with (
            serving(Receiver()) as receiver,
            running_service(database_url, **NO_POLL) as (app, client),
        ):
            dispatcher = app.state.services.webhooks.dispatcher

            async def first_fan_out_done() -> bool:  # at the start; it saw no endpoint
                return not dispatcher._subscribed

            await eventually(first_fan_out_done)
            listing = await open_listing(client, amount=1_000_000)
            for rate in (1500, 1600, 1700):
                await bid(client, listing, 10_000, rate)
            before = await conn.fetchval("SELECT max(seq) FROM events")
            skipped = await conn.fetchval("SELECT last_event_seq FROM webhook_fanout")
            assert skipped < before, "no fan-out after these commits: no endpoint wanted them"

            endpoint = await subscribe(client, receiver, ["bid.placed"])
            await bid(client, listing, 10_000, 1800)

            async def delivered() -> bool:
                return len(receiver.delivered) >= 1

            await eventually(delivered)
            seqs = await conn.fetch(
                "SELECT event_seq FROM webhook_deliveries WHERE endpoint_id = $1", endpoint
            )
    finally:
        await conn.close()
    assert [r["event_seq"] for r in seqs] == [before + 1], "the bid after, none of those before"
    assert [d["data"]["min_rate_bps"] for d in receiver.delivered] == [1800]
