"""A reader never sees a resolution that Postgres does not have yet."""

import asyncio
import time

import httpx

from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import open_listing, place_bid


async def test_a_listing_shown_funded_names_a_loan_that_can_already_be_read(
    database_url: str,
) -> None:
    async with running_service(database_url, rate_limit_per_s=0) as (_, client):  # tight polls
        await _read_as_it_resolves(client)


async def _read_as_it_resolves(client: httpx.AsyncClient) -> None:
    listing = await open_listing(client, amount=100_000, duration_s=1)
    for rate in (1500, 1400, 1300, 1200):
        await place_bid(client, listing["id"], 25_000, rate)
    deadline = time.monotonic() + 10
    while True:
        body = (await client.get(f"/v1/listings/{listing['id']}", headers=ADMIN)).json()
        if body["status"] != "open":
            break
        assert time.monotonic() < deadline, "the listing never closed"
        await asyncio.sleep(0)  # poll as tightly as the event loop allows
    assert body["status"] == "funded"
    loan = await client.get(f"/v1/loans/{body['loan_id']}", headers=ADMIN)
    assert loan.status_code == 200, "the loan named by the listing is already in Postgres"
    assert loan.json()["principal"] == 100_000
