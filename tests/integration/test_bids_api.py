"""Bids over HTTP and real Postgres: placing, the rules, outbids, live and final status."""

from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.conftest import ADMIN, KeyMaker, running_service
from tests.integration.helpers import (
    bid_body,
    error_fields,
    get_json,
    listing_body,
    open_listing,
    place_bid,
    problem,
    rows,
)


@pytest.fixture
def service(
    both_lanes: tuple[FastAPI, httpx.AsyncClient],
) -> tuple[FastAPI, httpx.AsyncClient]:
    """Every test here runs with the bid fast lane on and off."""
    return both_lanes


async def test_a_lender_bids_and_the_bid_is_in_postgres_when_the_201_arrives(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    listing = await open_listing(client)
    lena = await make_key("lender", "lena")
    response = await client.post(
        f"/v1/listings/{listing['id']}/bids", headers=lena, json=bid_body(120_000, 1450, None)
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    bid = response.json()
    assert bid["lender_id"] == "lena", "the lender defaults to the key's subject"
    assert bid["listing_id"] == listing["id"]
    assert bid["seq"] > listing["seq"]
    assert (bid["amount"], bid["min_rate_bps"], bid["status"], bid["allocated_amount"]) == (
        120_000, 1450, "active", 120_000,
    )
    stored = await rows(database_url, "SELECT * FROM bids WHERE id = $1", UUID(bid["id"]))
    assert len(stored) == 1
    assert (stored[0]["listing_id"], stored[0]["lender_id"], stored[0]["amount"],
            stored[0]["min_rate_bps"], stored[0]["seq"], stored[0]["status"]) == (
        UUID(listing["id"]), "lena", 120_000, 1450, bid["seq"], "active",
    )
    assert await get_json(client, f"/v1/bids/{bid['id']}", lena) == bid


async def test_an_admin_must_name_the_lender(client: httpx.AsyncClient) -> None:
    listing = await open_listing(client)
    response = await client.post(
        f"/v1/listings/{listing['id']}/bids", headers=ADMIN, json=bid_body(10_000, 1000, None)
    )
    assert error_fields(problem(response, 422, "validation_error")) == ["lender_id"]


async def test_a_bid_breaking_a_rule_is_422_with_its_code_and_nothing_is_stored(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client, amount=300_000, max_rate_bps=2000)
    for amount, rate, code, field in (
        (4_999, 1000, "bid_below_minimum", "amount"),
        (300_001, 1000, "bid_above_listing_amount", "amount"),
        (10_000, 2001, "rate_above_max", "min_rate_bps"),
        (10_000, 0, "rate_out_of_range", "min_rate_bps"),
        (-1, 1000, "bid_below_minimum", "amount"),
        (10**40, 1000, "bid_above_listing_amount", "amount"),
        (10_000, 100_001, "rate_above_max", "min_rate_bps"),
        (10_000, -1, "rate_out_of_range", "min_rate_bps"),
    ):
        response = await client.post(
            f"/v1/listings/{listing['id']}/bids", headers=ADMIN, json=bid_body(amount, rate)
        )
        assert error_fields(problem(response, 422, code)) == [field], (amount, rate)
    assert (await get_json(client, f"/v1/listings/{listing['id']}"))["bid_count"] == 0
    assert await rows(database_url, "SELECT id FROM bids") == []


async def test_a_negative_or_small_amount_or_rate_names_the_configured_limit(
    database_url: str,
) -> None:
    async with running_service(database_url, min_bid_amount=7_000) as (_, client):
        listing = await open_listing(client, amount=300_000, max_rate_bps=2000)
        path = f"/v1/listings/{listing['id']}/bids"
        for amount, rate, limit in ((-5, 1000, "7000"), (6_999, 1000, "7000"),
                                    (10_000, -1, "1 bp"), (10_000, 2001, "2000 bps")):
            body = (await client.post(path, headers=ADMIN, json=bid_body(amount, rate))).json()
            assert limit in body["detail"] and limit in body["errors"][0]["message"], body
            assert "greater than" not in body["detail"]
        for overrides, limit in (({"amount": -1}, "100000"), ({"max_rate_bps": -1}, "3600")):
            response = await client.post("/v1/listings", headers=ADMIN,
                                         json=listing_body(**overrides))
            assert limit in response.json()["detail"], response.text


async def test_a_bid_not_below_the_marginal_rate_of_a_covered_listing_is_409_with_that_rate(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client, amount=200_000)
    path = f"/v1/listings/{listing['id']}/bids"
    await place_bid(client, listing["id"], 100_000, 1200)
    await place_bid(client, listing["id"], 150_000, 1600)
    for rate in (1600, 1700):
        body = problem(await client.post(path, headers=ADMIN, json=bid_body(50_000, rate)),
                       409, "bid_not_competitive")
        assert body["marginal_rate_bps"] == 1600
        assert error_fields(body) == ["min_rate_bps"]
    assert len(await rows(database_url, "SELECT id FROM bids")) == 2, "nothing stored"
    assert (await get_json(client, f"/v1/listings/{listing['id']}"))["bid_count"] == 2
    await place_bid(client, listing["id"], 50_000, 1599)  # strictly below is competitive


async def test_a_cheaper_bid_pushes_the_dearest_out_for_good(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    listing = await open_listing(client, amount=200_000)
    dear = await place_bid(client, listing["id"], 100_000, 1800, lender_id="dora")
    mid = await place_bid(client, listing["id"], 100_000, 1500, lender_id="mia")
    cheap = await place_bid(client, listing["id"], 150_000, 1000, lender_id="chen")
    assert cheap["allocated_amount"] == 150_000
    book = (await get_json(client, f"/v1/listings/{listing['id']}/bids"))["data"]
    assert [(b["id"], b["status"], b["allocated_amount"]) for b in book] == [
        (cheap["id"], "active", 150_000), (mid["id"], "active", 50_000),
        (dear["id"], "outbid", 0),
    ]
    dora = await make_key("lender", "dora")
    assert (await get_json(client, f"/v1/bids/{dear['id']}", dora))["status"] == "outbid"
    # More cheap money cannot bring the outbid bid back: it stays out.
    await place_bid(client, listing["id"], 50_000, 900, lender_id="chen")
    assert (await get_json(client, f"/v1/bids/{dear['id']}", dora))["status"] == "outbid"
    assert (await get_json(client, f"/v1/bids/{mid['id']}"))["status"] == "outbid"


async def test_a_bid_shows_its_live_status_while_open_and_its_final_status_after_close(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    listing = await open_listing(client, amount=200_000)
    first = await place_bid(client, listing["id"], 200_000, 1500, lender_id="lena")
    lena = await make_key("lender", "lena")
    live = await get_json(client, f"/v1/bids/{first['id']}", lena)
    assert (live["status"], live["allocated_amount"]) == ("active", 200_000)
    second = await place_bid(client, listing["id"], 120_000, 1300, lender_id="lena")
    live = await get_json(client, f"/v1/bids/{first['id']}", lena)
    assert (live["status"], live["allocated_amount"]) == ("active", 80_000), "now partial"
    stored = await rows(database_url, "SELECT status FROM bids WHERE id = $1", UUID(first["id"]))
    assert stored[0]["status"] == "active", "live state is the engine's; Postgres gets the final"

    accepted = await client.post(f"/v1/listings/{listing['id']}/accept", headers=ADMIN)
    assert accepted.status_code == 200, accepted.text
    final = {b: await get_json(client, f"/v1/bids/{b}", lena) for b in (first["id"], second["id"])}
    assert (final[first["id"]]["status"], final[first["id"]]["allocated_amount"]) == ("won", 80_000)
    assert (final[second["id"]]["status"], final[second["id"]]["allocated_amount"]) == (
        "won", 120_000,
    )
    stored = await rows(database_url, "SELECT id, status, allocated_amount FROM bids ORDER BY seq")
    assert [(str(r["id"]), r["status"], r["allocated_amount"]) for r in stored] == [
        (first["id"], "won", 80_000), (second["id"], "won", 120_000),
    ]


async def test_unknown_bid_ids_are_404_even_when_not_uuids(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    lena = await make_key("lender", "lena")
    for bid_id in (str(uuid4()), "not-a-uuid"):
        for headers in (ADMIN, lena):
            problem(await client.get(f"/v1/bids/{bid_id}", headers=headers), 404, "bid_not_found")


async def test_a_lender_lists_its_own_bids_newest_first_across_listings_with_pagination(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    one = await open_listing(client, amount=100_000, close_when_funded=True)
    two = await open_listing(client)
    placed = [
        await place_bid(client, one["id"], 100_000, 1200, lender_id="lena"),  # funds `one`
        await place_bid(client, two["id"], 50_000, 1300, lender_id="lena"),
        await place_bid(client, two["id"], 60_000, 1900, lender_id="otto"),
        await place_bid(client, two["id"], 70_000, 1400, lender_id="lena"),
    ]
    lena = await make_key("lender", "lena")
    first = await get_json(client, "/v1/lenders/lena/bids", lena, limit=2)
    assert [b["id"] for b in first["data"]] == [placed[3]["id"], placed[1]["id"]]
    assert first["next_cursor"] is not None
    rest = await get_json(client, "/v1/lenders/lena/bids", lena, limit=2,
                          cursor=first["next_cursor"])
    assert [b["id"] for b in rest["data"]] == [placed[0]["id"]]
    assert rest["next_cursor"] is None
    assert rest["data"][0]["status"] == "won", "a closed listing's bid has its final status"
    assert {b["status"] for b in first["data"]} == {"active"}, "an open listing's bids are live"
    everything = await get_json(client, "/v1/lenders/lena/bids", ADMIN)
    assert len(everything["data"]) == 3
    assert (await get_json(client, "/v1/lenders/nobody/bids"))["data"] == []


async def test_close_when_funded_closes_on_the_covering_bid(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client, amount=100_000, close_when_funded=True, duration_s=3600)
    first = await place_bid(client, listing["id"], 60_000, 1500)
    assert (await get_json(client, f"/v1/listings/{listing['id']}"))["status"] == "open"
    last = await place_bid(client, listing["id"], 40_000, 1700)
    assert last["status"] == "won", "its own bid closed the listing"
    closed = await get_json(client, f"/v1/listings/{listing['id']}")
    assert (closed["status"], closed["close_reason"], closed["funded_amount"]) == (
        "funded", "fully_funded", 100_000,
    )
    loan = await get_json(client, f"/v1/loans/{closed['loan_id']}")
    assert loan["principal"] == 100_000
    assert sorted((f["bid_id"], f["amount"], f["rate_bps"]) for f in loan["fills"]) == sorted([
        (first["id"], 60_000, 1500), (last["id"], 40_000, 1700),
    ])
    assert loan["rate_bps"] == 1580, "pay as bid: the amount-weighted mean"
    stored = await rows(database_url, "SELECT status, close_reason FROM listings")
    assert [(r["status"], r["close_reason"]) for r in stored] == [("funded", "fully_funded")]
    late = await client.post(f"/v1/listings/{listing['id']}/bids", headers=ADMIN,
                             json=bid_body(10_000, 1000))
    problem(late, 409, "listing_not_open")


async def test_bids_stay_binding_there_is_no_route_to_withdraw_one(
    client: httpx.AsyncClient,
) -> None:
    listing = await open_listing(client)
    bid = await place_bid(client, listing["id"], 50_000, 1500)
    response = await client.delete(f"/v1/bids/{bid['id']}", headers=ADMIN)
    problem(response, 405, "method_not_allowed")
    assert (await get_json(client, f"/v1/bids/{bid['id']}"))["status"] == "active"
