"""A 201 means committed, shown deterministically: the test holds the commit itself.

A deferred constraint trigger, created by the test on its own database, makes the transaction
that inserts into a table wait at COMMIT for an advisory lock the test holds. While the test
holds it, that transaction cannot commit, so no answer may arrive; once it lets go, the answer
arrives and its rows are there. An answer sent before the commit arrives while the lock is held,
so it fails this test every time. Shown on the bid route (both lanes), a deposit (the journal
path) and two writes made in a transaction of their own (an API key, a webhook endpoint).
"""

import asyncio
from uuid import uuid4

import httpx
from fastapi import FastAPI

from tests.integration.conftest import ADMIN
from tests.integration.helpers import Json, bid_body, gated, open_listing, rows

#: How long a held commit must go unanswered. The wrong order answers within a few event-loop
#: turns of the writer's COMMIT starting, long before this.
UNANSWERED_S = 0.5


async def answered_only_after_commit(
    client: httpx.AsyncClient, database_url: str, table: str, path: str, body: Json,
) -> httpx.Response:
    """POST while the gate holds the commit: no answer until it opens, then a 201."""
    async with gated(database_url, table) as gate:
        request = asyncio.create_task(client.post(
            path, json=body, headers={**ADMIN, "Idempotency-Key": uuid4().hex},
        ))
        try:
            await gate.until_a_commit_is_held()
            done, _ = await asyncio.wait([request], timeout=UNANSWERED_S)
            assert not done, f"answered {request.result().status_code} before its commit"
            assert await gate.held_commits() == 1, "the commit was still held"
        finally:
            await gate.open()
        response = await request
    assert response.status_code == 201, response.text
    return response


async def test_a_bid_is_answered_only_once_its_commit_is_done(
    both_lanes: tuple[FastAPI, httpx.AsyncClient], database_url: str,
) -> None:
    client = both_lanes[1]
    listing = await open_listing(client)
    response = await answered_only_after_commit(
        client, database_url, "bids", f"/v1/listings/{listing['id']}/bids",
        bid_body(120_000, 1450),
    )
    stored = await rows(database_url, "SELECT seq FROM bids WHERE id = $1::uuid",
                        response.json()["id"])
    assert [r["seq"] for r in stored] == [response.json()["seq"]]


async def test_a_deposit_is_answered_only_once_its_commit_is_done(
    client: httpx.AsyncClient, database_url: str,
) -> None:
    response = await answered_only_after_commit(
        client, database_url, "ledger_entries", "/v1/accounts/ivy/deposits",
        {"amount": 250_000, "reference": "wire"},
    )
    stored = await rows(database_url, "SELECT amount FROM ledger_entries WHERE id = $1",
                        response.json()["entry"]["id"])
    assert [r["amount"] for r in stored] == [250_000]


async def test_a_new_api_key_is_answered_only_once_its_commit_is_done(
    client: httpx.AsyncClient, database_url: str,
) -> None:
    response = await answered_only_after_commit(
        client, database_url, "api_keys", "/v1/api-keys", {"role": "lender", "subject": "ivy"},
    )
    stored = await rows(database_url, "SELECT subject FROM api_keys WHERE id = $1::uuid",
                        response.json()["id"])
    assert [r["subject"] for r in stored] == ["ivy"]
    key = {"Authorization": f"Bearer {response.json()['key']}"}
    assert (await client.get("/v1/lenders/ivy/bids", headers=key)).status_code == 200


async def test_a_new_webhook_endpoint_is_answered_only_once_its_commit_is_done(
    client: httpx.AsyncClient, database_url: str,
) -> None:
    response = await answered_only_after_commit(
        client, database_url, "webhook_endpoints", "/v1/webhook-endpoints",
        {"url": "https://hooks.invalid/after-commit"},
    )
    stored = await rows(database_url, "SELECT url FROM webhook_endpoints WHERE id = $1::uuid",
                        response.json()["id"])
    assert [r["url"] for r in stored] == ["https://hooks.invalid/after-commit"]


async def test_a_bid_whose_client_leaves_mid_commit_is_stored_and_the_journal_goes_on(
    both_lanes: tuple[FastAPI, httpx.AsyncClient], database_url: str,
) -> None:
    """Without an Idempotency-Key the request awaits the writer's own future (no shield): the
    cancel reaches that future, and the writer must still write the entry and carry on."""
    client = both_lanes[1]
    listing = await open_listing(client)
    path = f"/v1/listings/{listing['id']}/bids"
    async with gated(database_url, "bids") as gate:
        leaver = asyncio.create_task(client.post(path, json=bid_body(10_000, 1000),
                                                 headers=ADMIN))
        await gate.until_a_commit_is_held()
        leaver.cancel()
        done, _ = await asyncio.wait([leaver], timeout=30)
        assert done and leaver.cancelled()
        await gate.open()
    # Bounded: a writer that died on the cancelled future would leave this unanswered.
    after = await asyncio.wait_for(
        client.post(path, json=bid_body(20_000, 1100), headers=ADMIN), 30
    )
    assert after.status_code == 201, after.text
    stored = await rows(database_url, "SELECT amount FROM bids ORDER BY seq")
    assert [r["amount"] for r in stored] == [10_000, 20_000]


async def test_a_funding_bid_whose_client_leaves_mid_commit_keeps_readers_waiting(
    both_lanes: tuple[FastAPI, httpx.AsyncClient], database_url: str,
) -> None:
    """A bid that funds its listing resolves it: readers wait (`Market.settled`) on the same
    commit the bid did. Its client leaving must not end that wait before the loan is stored."""
    client = both_lanes[1]
    listing = await open_listing(client, amount=100_000, close_when_funded=True)
    path = f"/v1/listings/{listing['id']}"
    async with gated(database_url, "loans") as gate:
        leaver = asyncio.create_task(client.post(f"{path}/bids", json=bid_body(100_000, 1000),
                                                 headers=ADMIN))
        reader: asyncio.Task[httpx.Response] | None = None
        try:
            await gate.until_a_commit_is_held()
            leaver.cancel()
            done, _ = await asyncio.wait([leaver], timeout=30)
            assert done and leaver.cancelled()
            reader = asyncio.create_task(client.get(path, headers=ADMIN))
            done, _ = await asyncio.wait([reader], timeout=UNANSWERED_S)
            assert not done, f"read {reader.result().text} before the loan was committed"
            assert await gate.held_commits() == 1, "the commit was still held"
        finally:
            await gate.open()
        assert reader is not None
        response = await reader
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "funded"
    stored = await rows(database_url, "SELECT principal FROM loans WHERE listing_id = $1::uuid",
                        listing["id"])
    assert [r["principal"] for r in stored] == [100_000]
