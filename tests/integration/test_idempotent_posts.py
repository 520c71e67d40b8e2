"""Every POST honours Idempotency-Key, and a retry can never act twice, even when the first
request's client went away mid-commit."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.api.guard import api_routes
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import (
    Json,
    all_events,
    bid_body,
    gated,
    get_json,
    listing_body,
    open_listing,
    place_bid,
    rows,
)

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")

#: A webhook endpoint nothing in these tests will deliver to (no listing fails here).
ENDPOINT = {"url": "http://127.0.0.1:9/hooks", "event_types": ["listing.failed"]}
Sample = Callable[[httpx.AsyncClient], Awaitable[tuple[str, Json | None]]]


async def _listing(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    return "/v1/listings", listing_body()


async def _bid(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    listing = await open_listing(client)
    return f"/v1/listings/{listing['id']}/bids", bid_body(10_000, 1000)


async def _accept(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    listing = await open_listing(client, min_funding_bps=1)
    await place_bid(client, listing["id"], 10_000, 1000)
    return f"/v1/listings/{listing['id']}/accept", None


async def _cancel(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    listing = await open_listing(client)
    return f"/v1/listings/{listing['id']}/cancel", None


async def _key(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    return "/v1/api-keys", {"role": "lender", "subject": "lena"}


async def _endpoint(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    return "/v1/webhook-endpoints", ENDPOINT


async def _redeliver(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    await open_listing(client)
    event = (await all_events(client))[-1]
    return f"/v1/events/{event['id']}/redeliver", None


async def _deposit(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    return "/v1/accounts/ivy/deposits", {"amount": 10_000, "reference": "wire 1"}


async def _withdrawal(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    return "/v1/accounts/lena/withdrawals", {"amount": 10_000, "reference": "to bank"}


async def _standing_order(client: httpx.AsyncClient) -> tuple[str, Json | None]:
    return "/v1/standing-orders", {
        "lender_id": "lena", "grades": ["A", "B"], "term_months_min": 6, "term_months_max": 24,
        "min_rate_bps": 900, "amount_per_listing": 10_000, "budget": 100_000,
    }


#: One way to call each POST route; a new route without one fails the walk below.
SAMPLES: dict[str, Sample] = {
    "/v1/listings": _listing,
    "/v1/listings/{listing_id}/bids": _bid,
    "/v1/listings/{listing_id}/accept": _accept,
    "/v1/listings/{listing_id}/cancel": _cancel,
    "/v1/api-keys": _key,
    "/v1/webhook-endpoints": _endpoint,
    "/v1/events/{event_id}/redeliver": _redeliver,
    "/v1/accounts/{account_id}/deposits": _deposit,
    "/v1/accounts/{account_id}/withdrawals": _withdrawal,
    "/v1/standing-orders": _standing_order,
}
SHOWN_ONCE = {"/v1/api-keys": "key", "/v1/webhook-endpoints": "secret"}


@pytest.fixture
async def service(database_url: str) -> Any:
    # Loopback webhook URLs: the setting that allows them once egress rules exist (ignored now).
    async with running_service(database_url, webhook_allow_private=True) as running:
        yield running


@pytest.fixture
def app(service: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return service[0]


async def test_every_post_route_replays_a_retry_with_the_same_key(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    posts = {route.path for route in api_routes(app) if "POST" in (route.methods or ())}
    assert posts == set(SAMPLES), "give every POST route a sample request here"
    for template, sample in SAMPLES.items():
        path, body = await sample(client)
        headers = {**ADMIN, "Idempotency-Key": f"walk:{template}"}
        first = await client.post(path, headers=headers, json=body)
        assert first.status_code in (200, 201, 202), (template, first.text)
        again = await client.post(path, headers=headers, json=body)
        assert again.headers.get("Idempotent-Replayed") == "true", template
        assert again.status_code == first.status_code, template
        expected = first.json()
        if template in SHOWN_ONCE:
            expected[SHOWN_ONCE[template]] = None
        assert again.json() == expected, template


async def test_a_retried_key_creation_mints_one_key_and_never_stores_it(
    client: httpx.AsyncClient, database_url: str
) -> None:
    headers = {**ADMIN, "Idempotency-Key": "mint-1"}
    body = {"role": "lender", "subject": "lena"}
    first = await client.post("/v1/api-keys", headers=headers, json=body)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/api-keys", headers=headers, json=body)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert {**first.json(), "key": None} == again.json()
    assert len(await rows(database_url, "SELECT id FROM api_keys")) == 1
    stored = await rows(database_url, "SELECT body FROM idempotency_keys")
    assert first.json()["key"].encode() not in bytes(stored[0]["body"])


async def test_a_retried_endpoint_creation_makes_one_endpoint(
    client: httpx.AsyncClient, database_url: str
) -> None:
    headers = {**ADMIN, "Idempotency-Key": "subscribe-1"}
    first = await client.post("/v1/webhook-endpoints", headers=headers, json=ENDPOINT)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/webhook-endpoints", headers=headers, json=ENDPOINT)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert {**first.json(), "secret": None} == again.json()
    assert len((await get_json(client, "/v1/webhook-endpoints"))["data"]) == 1
    assert len(await rows(database_url, "SELECT id FROM webhook_endpoints")) == 1


async def test_a_key_is_minted_only_if_its_idempotency_record_commits_with_it(
    app: FastAPI, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("""
            CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'no record today'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON idempotency_keys
            FOR EACH ROW EXECUTE FUNCTION refuse();""")
    finally:
        await conn.close()
    headers = {**ADMIN, "Idempotency-Key": "doomed"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/v1/api-keys", headers=headers,
                                     json={"role": "lender", "subject": "lena"})
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["title"], problem["code"]) == (
        500, "Internal server error", "internal_error"
    )
    assert await rows(database_url, "SELECT id FROM api_keys") == [], "rolled back together"


async def test_a_client_that_leaves_mid_commit_keeps_its_slot_so_the_retry_replays(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client)
    path = f"/v1/listings/{listing['id']}/bids"
    headers = {**ADMIN, "Idempotency-Key": "leaver"}
    async with gated(database_url, "bids") as gate:
        first = asyncio.create_task(client.post(path, headers=headers, json=bid_body(10_000, 1000)))
        await gate.until_a_commit_is_held()
        first.cancel()  # the client disconnects while its bid is being committed
        with pytest.raises(asyncio.CancelledError):
            await first
        retry = asyncio.create_task(client.post(path, headers=headers, json=bid_body(10_000, 1000)))
        await asyncio.sleep(0.5)  # time for a wrongly freed slot to act again (never to pass)
        await gate.open()
        again = await asyncio.wait_for(retry, 30)
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert [str(r["id"]) for r in await rows(database_url, "SELECT id FROM bids")] == [
        again.json()["id"]
    ]
    assert len(await all_events(client, type="bid.placed")) == 1
