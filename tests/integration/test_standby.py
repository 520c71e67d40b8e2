"""Two instances on one database, in-process: the second waits as a standby, then takes over."""

import asyncio
import contextlib
import time

import httpx
import pytest

from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import get_json, open_listing, place_bid, problem

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")


async def _ready(client: httpx.AsyncClient, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "the standby did not take over"
        await asyncio.sleep(0.05)


async def test_a_second_instance_waits_as_a_standby_and_serves_no_api(database_url: str) -> None:
    async with running_service(database_url) as (_, writer), \
            running_service(database_url, fund_lenders=False) as (_, standby):
        readyz = await standby.get("/readyz")
        assert readyz.status_code == 503
        assert readyz.json() == {"status": "standby", "code": "standby"}
        assert (await writer.get("/readyz")).status_code == 200
        listing = await open_listing(writer)
        for method, path, body in (
            ("GET", "/v1/events", None),
            ("GET", f"/v1/listings/{listing['id']}", None),
            ("POST", "/v1/listings", {"amount": 1}),
            ("POST", f"/v1/listings/{listing['id']}/bids", {"amount": 5_000, "min_rate_bps": 900}),
            ("POST", "/v1/api-keys", {"role": "lender", "subject": "x"}),
        ):
            response = await standby.request(method, path, json=body, headers=ADMIN)
            problem(response, 503, "standby")
            assert response.headers["Retry-After"] == "1"
        assert (await standby.get("/healthz")).status_code == 200
        assert "loan_auction_writer 0.0" in (await standby.get("/metrics", headers=ADMIN)).text
        assert "loan_auction_writer 1.0" in (await writer.get("/metrics", headers=ADMIN)).text
        book = await get_json(writer, f"/v1/listings/{listing['id']}/bids")
        assert book["data"] == [], "the standby's refusals changed nothing"


async def test_a_standby_takes_over_when_the_writer_stops_and_continues_its_books(
    database_url: str,
) -> None:
    async with contextlib.AsyncExitStack() as first_instance:
        _, first = await first_instance.enter_async_context(running_service(database_url))
        listing = await open_listing(first, amount=1_000_000)
        bids = [await place_bid(first, listing["id"], 100_000, rate) for rate in (900, 800)]
        async with running_service(
            database_url, fund_lenders=False, fence_poll_s=0.02
        ) as (_, second):
            assert (await second.get("/readyz")).status_code == 503
            await first_instance.aclose()  # a clean stop frees the fence at once
            await _ready(second)
            book = await get_json(second, f"/v1/listings/{listing['id']}/bids")
            assert [b["id"] for b in book["data"]] == [bids[1]["id"], bids[0]["id"]]
            after = await place_bid(second, listing["id"], 100_000, 700)
            assert after["seq"] > max(b["seq"] for b in bids), "seq continues after the takeover"
