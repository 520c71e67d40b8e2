"""One way of reading a JSON body on every route: the bid route's fast lane (on or off) answers
exactly as FastAPI does for the other routes' body parameters."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.conftest import ADMIN
from tests.integration.helpers import open_listing, problem, rows

_OK_BID = b'{"amount": 10000, "min_rate_bps": 1000, "lender_id": "lena"}'
#: (Content-Type, body): requests whose answer is about the body as a whole.
ODD: list[tuple[str | None, bytes | None]] = [
    (None, None), (None, b""), ("application/json", None), ("application/json", b""),
    (None, _OK_BID), ("text/plain", _OK_BID), ("application/x-www-form-urlencoded", b"a=1"),
    ("application/jsonx", _OK_BID), ("json", _OK_BID), ("text/plain", b""),
    ("application/json", b"{"), ("application/json", b"\xff\xfe"), ("text/plain", b"{"),
    ("application/json", b"[1, 2]"), ("application/json", b'"bid"'),
    ("application/json", b"null"), ("application/json", b"7"),
]


@pytest.fixture
def service(
    both_lanes: tuple[FastAPI, httpx.AsyncClient],
) -> tuple[FastAPI, httpx.AsyncClient]:
    return both_lanes


def _answer(response: httpx.Response) -> tuple[int, str, Any]:
    body = response.json()
    return response.status_code, body["code"], body.get("errors")


async def test_a_missing_or_empty_body_is_the_same_422_on_every_route(
    client: httpx.AsyncClient,
) -> None:
    listing = await open_listing(client)
    paths = ("/v1/listings", f"/v1/listings/{listing['id']}/bids", "/v1/api-keys",
             "/v1/webhook-endpoints")
    for content_type in (None, "application/json"):
        headers = ADMIN if content_type is None else {**ADMIN, "Content-Type": content_type}
        for path in paths:
            for content in (None, b""):
                response = await client.post(path, headers=headers, content=content)
                body = problem(response, 422, "validation_error")
                assert body["errors"] == [{"field": "body", "message": "Field required"}], path


async def test_the_bid_route_answers_odd_bodies_exactly_as_the_other_routes(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client)
    for content_type, content in ODD:
        headers = dict(ADMIN) if content_type is None else {**ADMIN, "Content-Type": content_type}
        bids = await client.post(f"/v1/listings/{listing['id']}/bids", headers=headers,
                                 content=content)
        keys = await client.post("/v1/api-keys", headers=headers, content=content)
        assert bids.headers["content-type"] == "application/problem+json", bids.text
        assert _answer(bids) == _answer(keys), (content_type, content)
    assert await rows(database_url, "SELECT id FROM bids") == []


async def test_a_json_content_type_with_parameters_or_a_json_suffix_is_read(
    client: httpx.AsyncClient,
) -> None:
    listing = await open_listing(client)
    for content_type in ("application/json; charset=utf-8", "Application/JSON",
                         "application/vnd.api+json"):
        headers = {**ADMIN, "Content-Type": content_type}
        response = await client.post(f"/v1/listings/{listing['id']}/bids", headers=headers,
                                     content=_OK_BID)
        assert response.status_code == 201, (content_type, response.text)
