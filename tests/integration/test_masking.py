"""Lenders do not see each other: a caller sees its own bids and fills with its id, everyone
else's masked; admins see every id; depth names no lender at all."""

import httpx
import pytest

from tests.integration.conftest import ADMIN, KeyMaker
from tests.integration.helpers import Json, get_json, open_listing, place_bid, wait_until_closed

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")


def _lenders(page: Json) -> list[str]:
    return [bid["lender_id"] for bid in page["data"]]


async def test_each_caller_sees_its_own_bids_in_full_and_other_lenders_masked(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    lena, otto = await make_key("lender", "lena"), await make_key("lender", "otto")
    bob = await make_key("borrower", "bob")
    listing = await open_listing(client, bob, amount=100_000)
    path = f"/v1/listings/{listing['id']}"
    own = await place_bid(client, listing["id"], 40_000, 1200, lena, lender_id=None)
    await place_bid(client, listing["id"], 40_000, 1300, otto, lender_id=None)
    await place_bid(client, listing["id"], 40_000, 1400, ADMIN, lender_id="carl-7")
    views = {
        "lena": (lena, ["lena", "ot***", "ca***"]),
        "otto": (otto, ["le***", "otto", "ca***"]),
        "bob": (bob, ["le***", "ot***", "ca***"]),
        "admin": (ADMIN, ["lena", "otto", "carl-7"]),
    }
    for headers, expected in views.values():  # the open book, from memory
        assert _lenders(await get_json(client, f"{path}/bids", headers)) == expected
        depth = await client.get(f"{path}/book", headers=headers)
        assert not {"lena", "otto", "carl"} & set(depth.text.replace('"', " ").split())
        assert all("lender_id" not in level for level in depth.json()["data"])
    assert (await get_json(client, f"/v1/bids/{own['id']}", lena))["lender_id"] == "lena"

    assert (await client.post(f"{path}/accept", headers=bob)).status_code == 200
    closed = await wait_until_closed(client, listing["id"])
    for headers, expected in views.values():  # the closed book and the loan, from Postgres
        assert _lenders(await get_json(client, f"{path}/bids", headers)) == expected
        loan = await get_json(client, f"/v1/loans/{closed['loan_id']}", headers,
                              fill_schedules="true")
        assert [fill["lender_id"] for fill in loan["fills"]] == expected
    assert _lenders(await get_json(client, "/v1/lenders/lena/bids", lena)) == ["lena"]
