"""Idempotency-Key: a retry replays the stored answer and never acts twice."""

import asyncio
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.conftest import ADMIN, KeyMaker
from tests.integration.helpers import (
    all_events,
    bid_body,
    error_fields,
    get_json,
    listing_body,
    open_listing,
    problem,
    rows,
)


@pytest.fixture
def service(
    both_lanes: tuple[FastAPI, httpx.AsyncClient],
) -> tuple[FastAPI, httpx.AsyncClient]:
    """Every test here runs with the bid fast lane on and off."""
    return both_lanes


def _keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_a_retried_listing_replays_the_first_answer_and_opens_nothing_new(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    bob = _keyed(await make_key("borrower", "bob"), "open-1")
    first = await client.post("/v1/listings", headers=bob, json=listing_body())
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = await client.post("/v1/listings", headers=bob, json=listing_body())
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert [r["id"] for r in await rows(database_url, "SELECT id FROM listings")] == [
        UUID(first.json()["id"])
    ]
    assert [e["type"] for e in await all_events(client)] == ["listing.opened"]
    stored = await rows(database_url, "SELECT scope, key, status FROM idempotency_keys")
    assert [tuple(r.values()) for r in stored] == [("borrower:bob", "open-1", 201)]


async def test_a_retried_bid_replays_the_first_answer_and_stores_one_bid(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    listing = await open_listing(client)
    path = f"/v1/listings/{listing['id']}/bids"
    lena = _keyed(await make_key("lender", "lena"), "bid-1")
    first = await client.post(path, headers=lena, json=bid_body(50_000, 1500, None))
    assert first.status_code == 201, first.text
    await client.post(path, headers=ADMIN, json=bid_body(100_000, 1200, "otto"))  # state moves on
    again = await client.post(path, headers=lena, json=bid_body(50_000, 1500, None))
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await get_json(client, f"/v1/listings/{listing['id']}"))["bid_count"] == 2
    stored = await rows(database_url, "SELECT lender_id FROM bids ORDER BY seq")
    assert [r["lender_id"] for r in stored] == ["lena", "otto"]
    assert [e["type"] for e in await all_events(client, type="bid.placed")] == ["bid.placed"] * 2


async def test_the_same_key_with_another_body_or_route_is_422_idempotency_key_reused(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client)
    path = f"/v1/listings/{listing['id']}/bids"
    headers = _keyed(ADMIN, "reused")
    first = await client.post(path, headers=headers, json=bid_body(50_000, 1500))
    assert first.status_code == 201, first.text
    other_body = await client.post(path, headers=headers, json=bid_body(50_000, 1400))
    problem(other_body, 422, "idempotency_key_reused")
    other_route = await client.post("/v1/listings", headers=headers, json=listing_body())
    problem(other_route, 422, "idempotency_key_reused")
    assert len(await rows(database_url, "SELECT id FROM bids")) == 1
    assert len(await rows(database_url, "SELECT id FROM listings")) == 1


async def test_twenty_concurrent_duplicates_store_exactly_one_bid_and_agree(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    listing = await open_listing(client)
    lena = _keyed(await make_key("lender", "lena"), "burst")
    path = f"/v1/listings/{listing['id']}/bids"
    answers = await asyncio.gather(*(
        client.post(path, headers=lena, json=bid_body(25_000, 1500, None)) for _ in range(20)
    ))
    assert {a.status_code for a in answers} == {201}
    assert len({a.content for a in answers}) == 1, "every duplicate gets the same bid"
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 19
    stored = await rows(database_url, "SELECT id FROM bids")
    assert [str(r["id"]) for r in stored] == [answers[0].json()["id"]]
    assert (await get_json(client, f"/v1/listings/{listing['id']}"))["bid_count"] == 1
    assert len(await all_events(client, type="bid.placed")) == 1


async def test_keys_are_per_caller_so_two_lenders_may_use_the_same_one(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    listing = await open_listing(client)
    path = f"/v1/listings/{listing['id']}/bids"
    for name in ("lena", "otto"):
        headers = _keyed(await make_key("lender", name), "shared-key")
        response = await client.post(path, headers=headers, json=bid_body(50_000, 1500, None))
        assert response.status_code == 201, response.text
        assert "Idempotent-Replayed" not in response.headers
    assert len(await rows(database_url, "SELECT id FROM bids")) == 2


async def test_a_refusal_decided_by_the_engine_is_stored_and_replayed_like_a_success(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client, amount=100_000)
    path = f"/v1/listings/{listing['id']}/bids"
    headers = _keyed(ADMIN, "after-rejection")
    await client.post(path, headers=ADMIN, json=bid_body(100_000, 1500, "otto"))
    refused = await client.post(path, headers=headers, json=bid_body(100_000, 1500))
    problem(refused, 409, "bid_not_competitive")
    assert "Idempotent-Replayed" not in refused.headers
    stored = await rows(database_url, "SELECT key, status FROM idempotency_keys")
    assert [tuple(r.values()) for r in stored] == [("after-rejection", 409)]
    cancelled = await client.post(f"/v1/listings/{listing['id']}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200, cancelled.text  # run again, it would be listing_not_open
    again = await client.post(path, headers=headers, json=bid_body(100_000, 1500))
    problem(again, 409, "bid_not_competitive")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == refused.content
    rate = await client.post(path, headers=_keyed(ADMIN, "rate"), json=bid_body(10_000, 2001))
    problem(rate, 409, "listing_not_open")
    assert len(await rows(database_url, "SELECT key FROM idempotency_keys")) == 2


async def test_an_engine_422_is_stored_but_a_malformed_request_or_a_403_is_not(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    listing = await open_listing(client, max_rate_bps=2000)
    path = f"/v1/listings/{listing['id']}/bids"
    over = await client.post(path, headers=_keyed(ADMIN, "k1"), json=bid_body(10_000, 2001))
    problem(over, 422, "rate_above_max")
    again = await client.post(path, headers=_keyed(ADMIN, "k1"), json=bid_body(10_000, 2001))
    assert (again.content, again.headers["Idempotent-Replayed"]) == (over.content, "true")
    shape = await client.post(path, headers=_keyed(ADMIN, "k2"), json={"amount": "10000"})
    problem(shape, 422, "validation_error")
    eve = await make_key("borrower", "eve")
    foreign = await client.post(f"/v1/listings/{listing['id']}/cancel", headers=_keyed(eve, "k3"))
    problem(foreign, 403, "forbidden_subject")
    stored = await rows(database_url, "SELECT key, status FROM idempotency_keys")
    assert [tuple(r.values()) for r in stored] == [("k1", 422)]


async def test_a_retried_accept_replays_its_answer_after_the_listing_closed(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    bob = await make_key("borrower", "bob")
    listing = await open_listing(client, bob, min_funding_bps=1)
    await client.post(f"/v1/listings/{listing['id']}/bids", headers=ADMIN,
                      json=bid_body(50_000, 1500))
    path = f"/v1/listings/{listing['id']}/accept"
    first = await client.post(path, headers=_keyed(bob, "accept-1"))
    assert first.status_code == 200, first.text
    again = await client.post(path, headers=_keyed(bob, "accept-1"))
    assert (again.status_code, again.content) == (200, first.content), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    fresh = await client.post(path, headers=_keyed(bob, "accept-2"))
    problem(fresh, 409, "listing_not_open")
    assert len(await rows(database_url, "SELECT id FROM loans")) == 1


async def test_a_retried_cancel_replays_its_answer(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    bob = await make_key("borrower", "bob")
    listing = await open_listing(client, bob)
    path = f"/v1/listings/{listing['id']}/cancel"
    first = await client.post(path, headers=_keyed(bob, "cancel-1"))
    assert first.status_code == 200, first.text
    again = await client.post(path, headers=_keyed(bob, "cancel-1"))
    assert (again.status_code, again.content) == (200, first.content), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [e["type"] for e in await all_events(client, type="listing.cancelled")] == [
        "listing.cancelled"
    ]


async def test_an_empty_or_overlong_idempotency_key_is_422_naming_the_header(
    client: httpx.AsyncClient,
) -> None:
    listing = await open_listing(client)
    for path, body in (("/v1/listings", listing_body()),
                       (f"/v1/listings/{listing['id']}/bids", bid_body(10_000, 1000))):
        for key in ("  ", "k" * 256):
            response = await client.post(path, headers=_keyed(ADMIN, key), json=body)
            assert error_fields(problem(response, 422, "validation_error")) == [
                "Idempotency-Key"
            ], (path, key)
