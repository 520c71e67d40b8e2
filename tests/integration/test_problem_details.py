"""Every error is RFC 9457 problem+json with a stable code; invalid input never gets a 500."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import (
    bid_body,
    error_fields,
    listing_body,
    open_listing,
    problem,
    rows,
)

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")


async def test_unknown_fields_are_rejected_by_name(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client)
    for path, body in (
        ("/v1/listings", listing_body(colour="red")),
        (f"/v1/listings/{listing['id']}/bids", {**bid_body(10_000, 1000), "colour": "red"}),
        ("/v1/api-keys", {"role": "lender", "subject": "x", "colour": "red"}),
    ):
        response = await client.post(path, headers=ADMIN, json=body)
        assert error_fields(problem(response, 422, "validation_error")) == ["colour"], path
    assert len(await rows(database_url, "SELECT id FROM listings")) == 1
    assert await rows(database_url, "SELECT id FROM bids") == []


WRONG_BID_FIELDS: list[tuple[str, Any]] = [
    ("amount", "5000"), ("amount", 5000.5), ("amount", True), ("amount", None),
    ("amount", 5000.0), ("amount", [5000]),
    ("min_rate_bps", "1200"), ("min_rate_bps", 12.5), ("min_rate_bps", False),
    ("lender_id", 42), ("lender_id", ""), ("lender_id", "x" * 129),
]


async def test_a_bid_field_of_the_wrong_type_is_422_naming_it(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client)
    for field, value in WRONG_BID_FIELDS:
        body = {**bid_body(10_000, 1000), field: value}
        response = await client.post(f"/v1/listings/{listing['id']}/bids", headers=ADMIN, json=body)
        assert error_fields(problem(response, 422, "validation_error")) == [field], (field, value)
    assert await rows(database_url, "SELECT id FROM bids") == []


WRONG_LISTING_FIELDS: list[tuple[str, Any]] = [
    ("amount", "300000"), ("amount", 300000.5), ("amount", True), ("term_months", "12"),
    ("max_rate_bps", 20.0), ("duration_s", "60"), ("close_when_funded", "true"),
    ("close_when_funded", 1), ("min_funding_bps", False), ("grade", 1), ("pricing", None),
    ("closes_at", "tomorrow"), ("closes_at", {"at": "2099-01-01T00:00:00Z"}),
    # Only RFC 3339 with an offset: no Unix seconds or milliseconds, naive or partial times.
    ("closes_at", 1_900_000_000), ("closes_at", 1_900_000_000_000), ("closes_at", 1.9e9),
    ("closes_at", "1900000000"), ("closes_at", "2030-01-01T00:00:00"), ("closes_at", "2030-01-01"),
    ("closes_at", "2030-01-01 00:00:00Z"), ("closes_at", "2030-01-01T00:00:00+0800"),
    ("closes_at", "2030-01-01T00:00Z"), ("closes_at", True),
]


async def test_a_listing_field_of_the_wrong_type_is_422_naming_it(
    client: httpx.AsyncClient, database_url: str
) -> None:
    for field, value in WRONG_LISTING_FIELDS:
        body = listing_body(duration_s=None if field == "closes_at" else 60)
        body[field] = value
        response = await client.post("/v1/listings", headers=ADMIN, json=body)
        assert error_fields(problem(response, 422, "validation_error")) == [field], (field, value)
    assert await rows(database_url, "SELECT id FROM listings") == []


async def test_a_body_that_is_not_json_is_400_malformed_body(client: httpx.AsyncClient) -> None:
    listing = await open_listing(client)
    headers = {**ADMIN, "Content-Type": "application/json"}
    for path in ("/v1/listings", f"/v1/listings/{listing['id']}/bids", "/v1/api-keys"):
        for content in (b"{not json", b'{"amount": 1', b"\xff\xfe\x00"):
            response = await client.post(path, headers=headers, content=content)
            problem(response, 400, "malformed_body")


async def test_a_json_body_that_is_not_an_object_is_422(client: httpx.AsyncClient) -> None:
    listing = await open_listing(client)
    headers = {**ADMIN, "Content-Type": "application/json"}
    for path in ("/v1/listings", f"/v1/listings/{listing['id']}/bids", "/v1/api-keys"):
        for body in ([1, 2], "listing", 7, None):
            response = await client.post(path, headers=headers, content=json.dumps(body))
            assert error_fields(problem(response, 422, "validation_error")) == ["body"], body


async def test_a_body_over_64_kib_is_413_before_anything_happens(
    client: httpx.AsyncClient, database_url: str
) -> None:
    padded = listing_body(borrower_id="b" * 70_000)
    response = await client.post("/v1/listings", headers=ADMIN, json=padded)
    problem(response, 413, "payload_too_large")
    listing = await open_listing(client)
    response = await client.post(f"/v1/listings/{listing['id']}/bids", headers=ADMIN,
                                 content=b" " * (64 * 1024 + 1))
    problem(response, 413, "payload_too_large")
    response = await client.post("/v1/listings", json=padded)  # no key: still 413
    problem(response, 413, "payload_too_large")
    assert len(await rows(database_url, "SELECT id FROM listings")) == 1


async def test_a_streamed_body_without_a_length_is_cut_off_at_64_kib(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 8192

    headers = {**ADMIN, "Content-Type": "application/json"}
    response = await client.post("/v1/listings", headers=headers, content=chunks())
    assert "content-length" not in response.request.headers
    problem(response, 413, "payload_too_large")
    listing = await open_listing(client)
    response = await client.post(f"/v1/listings/{listing['id']}/bids", headers=headers,
                                 content=chunks())
    assert "content-length" not in response.request.headers
    problem(response, 413, "payload_too_large")


async def test_a_body_just_under_the_limit_is_read(client: httpx.AsyncClient) -> None:
    body = listing_body()
    raw = httpx.Request("POST", "/", json=body).content
    padded = raw[:-1] + b" " * (64 * 1024 - len(raw)) + b"}"
    assert len(padded) == 64 * 1024
    headers = {**ADMIN, "Content-Type": "application/json"}
    response = await client.post("/v1/listings", headers=headers, content=padded)
    assert response.status_code == 201, response.text


async def test_a_wrong_method_is_405_problem_json_with_an_allow_header(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/v1/listings", headers=ADMIN)
    problem(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "POST"}
    problem(await client.put("/v1/events", headers=ADMIN), 405, "method_not_allowed")
    problem(await client.post("/healthz"), 405, "method_not_allowed")


async def test_an_unknown_route_is_404_problem_json(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/v1", "/v2/listings", "/v1/listings/x/y/z"):
        problem(await client.get(path, headers=ADMIN), 404, "not_found")
    problem(await client.get("/nope"), 404, "not_found")


async def test_a_request_over_the_rate_limit_is_429_with_retry_after(database_url: str) -> None:
    async with running_service(
        database_url, fund_lenders=False, rate_limit_per_s=0.01, rate_limit_burst=2
    ) as (_, client):
        for _ in range(2):
            assert (await client.get("/v1/listings", headers=ADMIN)).status_code == 200
        limited = await client.get("/v1/listings", headers=ADMIN)
        problem(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
        assert (await client.get("/healthz")).status_code == 200, "operations are not limited"


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    ok = await client.get("/healthz", headers={"X-Request-Id": "trace-me"})
    assert ok.headers["x-request-id"] == "trace-me"
    error = await client.get("/v1/listings")
    assert error.headers["x-request-id"]
