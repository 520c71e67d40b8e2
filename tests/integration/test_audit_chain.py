"""The audit chain: anyone holding the event log can recompute every `hash` (docs/operations.md).

The first test uses nothing but the HTTP API and the standard library, as an outsider would.
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from app.audit.chain import canonical, reference_canonical
from app.journal import Entry
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import all_events, open_listing, place_bid, writing_again

Json = dict[str, Any]


def recompute(events: list[Json]) -> list[str]:
    """The chain as its definition reads: a few lines of hashlib and json."""
    hashes, previous = [], "0" * 64
    for event in events:
        body = {k: v for k, v in event.items() if k != "hash"}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        previous = hashlib.sha256(previous.encode() + text.encode()).hexdigest()
        hashes.append(previous)
    return hashes


async def an_auction_of_every_kind(client: httpx.AsyncClient) -> None:
    """Opened, bid, outbid, funded, failed and cancelled listings."""
    funded = (await open_listing(client, amount=200_000))["id"]
    await place_bid(client, funded, 150_000, 1800, lender_id="dora")
    await place_bid(client, funded, 150_000, 1300, lender_id="chen")
    await place_bid(client, funded, 100_000, 1100, lender_id="abe")  # outbids dora
    assert (await client.post(f"/v1/listings/{funded}/accept", headers=ADMIN)).status_code == 200
    failed = (await open_listing(client, amount=200_000, min_funding_bps=9000))["id"]
    await place_bid(client, failed, 50_000, 1500)
    assert (await client.post(f"/v1/listings/{failed}/accept", headers=ADMIN)).status_code in (
        200, 409,
    )
    cancelled = (await open_listing(client))["id"]
    assert (
        await client.post(f"/v1/listings/{cancelled}/cancel", headers=ADMIN)
    ).status_code == 200


async def test_anyone_recomputes_every_hash_from_the_event_api(database_url: str) -> None:
    # A currency outside ASCII puts UTF-8 text into every listing's event data.
    async with running_service(database_url, currency="人民币") as (_, client):
        await an_auction_of_every_kind(client)
        events = await all_events(client, page=3)
    kinds = {e["type"] for e in events}
    assert {"listing.opened", "bid.placed", "bid.outbid", "listing.funded"} <= kinds
    assert "listing.cancelled" in kinds
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert any(e["data"].get("currency") == "人民币" for e in events)
    assert [e["hash"] for e in events] == recompute(events)


async def test_the_chain_goes_on_across_restarts(database_url: str) -> None:
    for _ in range(2):
        async with running_service(database_url) as (_, client):
            listing = (await open_listing(client))["id"]
            await place_bid(client, listing, 100_000, 1500)
    async with running_service(database_url) as (_, client):
        events = await all_events(client)
    assert len(events) == 4
    assert [e["hash"] for e in events] == recompute(events)


async def test_event_data_comes_back_from_jsonb_exactly_as_it_was_hashed(
    database_url: str,
) -> None:
    """Hashes are computed from the Python objects before Postgres stores them as jsonb; what
    `GET /v1/events` returns afterwards must hash the same, whatever the text or numbers."""
    awkward: Json = {
        "text": ["Zoë", "王小明", "😀", "é vs e\u0301", "\u2028\u2029", "tab\tnew\nline",
                 "\x01\x1f\x7f", 'quote " back \\ slash', "</script>", ""],
        "numbers": [0, -1, 2**53 + 1, -(2**62), 10**15],
        "nested": {"b": {"z": [], "a": {}}, "a": [True, False, None]},
        "Z": "capitals sort before lower case", "_": 1, "é": "non-ASCII key",
    }
    async with running_service(database_url) as (app, client):
        market = app.state.services.market
        at = datetime(2026, 11, 28, 12, 0, 0, 0, tzinfo=UTC)  # no microseconds: the short form
        for n, data in enumerate([awkward, {"only": "ascii"}, awkward["nested"]]):
            row = (str(uuid4()), "listing.opened", None, at.replace(microsecond=n * 7), data)
            await market.writer.submit(Entry(events=[row]))
        events = await all_events(client, page=3)
    assert events[0]["data"] == awkward
    assert events[0]["created_at"] == "2026-11-28T12:00:00Z"
    assert events[1]["created_at"] == "2026-11-28T12:00:00.000007Z"
    assert [e["hash"] for e in events] == recompute(events)


async def test_events_stored_before_the_chain_existed_are_chained_at_start(
    database_url: str,
) -> None:
    async with running_service(database_url) as (_, client):
        await an_auction_of_every_kind(client)
        before = await all_events(client)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE events SET hash = NULL WHERE seq > 2")  # as after migrating
    finally:
        await conn.close()
    async with running_service(database_url) as (_, client):
        listing = (await open_listing(client))["id"]  # the writer continues the backfilled chain
        after = await all_events(client)
    assert after[: len(before)] == before
    assert [e["hash"] for e in after] == recompute(after)
    assert listing in {e["data"].get("id") for e in after}


async def test_a_failed_batch_makes_the_writer_read_the_head_again(database_url: str) -> None:
    """A batch that rolled back must not leave its hashes as the head the next batch chains
    from: the writer re-reads (seq, hash) from Postgres."""
    async with running_service(database_url) as (app, client):
        listing = (await open_listing(client))["id"]
        market = app.state.services.market
        row = (str(uuid4()), "listing.opened", None, datetime.now(UTC), {"n": 1})
        doomed = Entry(events=[row], idempotency=[("s", "k", b"", 200, b"", None)])  # NOT NULL
        with pytest.raises(Exception) as failed:  # asyncpg's or psycopg's, by the lane taken
            await market.writer.submit(doomed)
        assert getattr(failed.value, "sqlstate", None) == "23502"  # not_null_violation
        await writing_again(app)
        await place_bid(client, listing, 100_000, 1500)
        events = await all_events(client)
    assert [e["type"] for e in events] == ["listing.opened", "bid.placed"]
    assert [e["hash"] for e in events] == recompute(events)


@pytest.mark.parametrize("stored", [
    "A" * 64, "g" * 64, "a" * 63, "a" * 65, "a" * 63 + "\n", "é" * 64, "a" * 62 + "-1", "",
])
async def test_postgres_refuses_a_hash_that_is_not_64_lowercase_hex_digits(
    database_url: str, stored: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="events_hash_check"):
            await _store_event_with_hash(conn, 1, stored)
        await _store_event_with_hash(conn, 2, "0123456789abcdef" * 4)
        await _store_event_with_hash(conn, 3, None)  # stored before the chain, until backfilled
    finally:
        await conn.close()


async def _store_event_with_hash(
    conn: "asyncpg.Connection[asyncpg.Record]", seq: int, stored: str | None
) -> None:
    await conn.execute(
        "INSERT INTO events (seq, id, type, created_at, data, hash)"
        " VALUES ($1, $2, 'listing.opened', now(), '{}', $3)", seq, uuid4(), stored,
    )


def test_the_fast_encoder_writes_exactly_what_the_definition_writes() -> None:
    event: Json = {
        "id": str(uuid4()), "seq": 7, "type": "bid.placed", "created_at": "2026-11-28T12:00:00Z",
        "data": {"lender_id": "王小明", "amount": 5_000, "nested": {"ü": ["\u2028", None]}},
    }
    assert canonical(event) == reference_canonical(event)
