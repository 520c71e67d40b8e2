"""Standing orders over HTTP, on real Postgres: the queue rotates across listings opening back to
back, manual bidders keep the uncapped share, bad bodies are 422s with fields, only the owner or
an admin acts, every write is idempotent and committed when answered, and a restart brings the
orders back exactly (queue included)."""

from typing import Any
from uuid import UUID

import httpx
import pytest

from app.recovery import RecoveryError
from tests.integration.conftest import ADMIN, KeyMaker, running_service
from tests.integration.helpers import (
    Json,
    all_events,
    error_fields,
    get_json,
    open_listing,
    place_bid,
    problem,
    rows,
)

PATH = "/v1/standing-orders"


def order_body(**overrides: Any) -> Json:
    body: Json = {
        "grades": ["B"], "term_months_min": 1, "term_months_max": 36, "min_rate_bps": 1_200,
        "amount_per_listing": 120_000, "budget": 1_000_000,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def create_order(
    client: httpx.AsyncClient, lender_id: str | None = "l1", headers: dict[str, str] = ADMIN,
    **overrides: Any,
) -> Json:
    response = await client.post(PATH, headers=headers, json=order_body(lender_id=lender_id,
                                                                         **overrides))
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


async def listing_bids(client: httpx.AsyncClient, listing_id: str) -> list[Json]:
    data: list[Json] = (await get_json(client, f"/v1/listings/{listing_id}/bids"))["data"]
    return data


async def test_two_listings_opening_back_to_back_rotate_the_queue(
    client: httpx.AsyncClient, database_url: str
) -> None:
    orders = [await create_order(client, lender) for lender in ("l1", "l2", "l3")]
    o1, o2, o3 = (o["id"] for o in orders)
    assert [o["queue_ticket"] for o in orders] == [1, 2, 3]

    # 300,000 at 8,000 bps for auto bids: room for two orders of 120,000 per listing.
    first = await open_listing(client)
    second = await open_listing(client)
    assert first["auto_bids"] == {"count": 2, "amount": 240_000}
    assert first["funded_amount"] == 240_000 and first["bid_count"] == 2
    assert [b["standing_order_id"] for b in await listing_bids(client, first["id"])] == [o1, o2]
    assert [b["standing_order_id"] for b in await listing_bids(client, second["id"])] == [o3, o1]
    third = await open_listing(client)
    assert [b["standing_order_id"] for b in await listing_bids(client, third["id"])] == [o2, o3]

    bids = await listing_bids(client, first["id"])
    assert {(b["source"], b["lender_id"], b["amount"], b["min_rate_bps"]) for b in bids} == {
        ("auto", "l1", 120_000, 1_200), ("auto", "l2", 120_000, 1_200)}
    assert bids[0]["seq"] == first["seq"] + 1 and bids[1]["seq"] == first["seq"] + 2
    placed = [e["data"] for e in await all_events(client, type="bid.placed")]
    assert [(p["source"], p["standing_order_id"]) for p in placed[:2]] == [
        ("auto", o1), ("auto", o2)]
    opened = [e["data"] for e in await all_events(client, type="listing.opened")]
    assert opened[0]["auto_bids"] == {"count": 2, "amount": 240_000}

    one = await get_json(client, f"{PATH}/{o1}")
    assert (one["reserved"], one["budget_left"], one["queue_ticket"]) == (240_000, 760_000, 7)
    stored = await rows(
        database_url, "SELECT id, ticket, reserved FROM standing_orders ORDER BY seq"
    )
    assert [(str(r["id"]), r["ticket"], r["reserved"]) for r in stored] == [
        (o1, 7, 240_000), (o2, 8, 240_000), (o3, 9, 240_000)]
    stored_bids = await rows(
        database_url, "SELECT standing_order_id FROM bids WHERE listing_id = $1 ORDER BY seq",
        UUID(first["id"]),
    )
    assert [str(r["standing_order_id"]) for r in stored_bids] == [o1, o2]


async def test_a_manual_bidder_can_still_take_the_share_left_to_manual_bids(
    client: httpx.AsyncClient,
) -> None:
    for lender in ("l1", "l2", "l3"):
        await create_order(client, lender, amount_per_listing=100_000)
    listing = await open_listing(client)
    assert listing["auto_bids"] == {"count": 3, "amount": 240_000}, "the third got what was left"
    manual = await place_bid(client, listing["id"], 60_000, 1_900, lender_id="otto")
    assert (manual["source"], manual["standing_order_id"]) == ("manual", None)
    assert (manual["status"], manual["allocated_amount"]) == ("active", 60_000)
    after = await get_json(client, f"/v1/listings/{listing['id']}")
    assert (after["funded_amount"], after["bid_count"]) == (300_000, 4)


async def test_the_auto_bid_share_comes_from_the_settings_and_stays_with_the_listing(
    database_url: str,
) -> None:
    async with running_service(database_url, autobid_max_share_bps=5_000) as (_, client):
        await create_order(client, "l1", amount_per_listing=200_000)
        listing = await open_listing(client)
        assert listing["policy"]["autobid_max_share_bps"] == 5_000
        assert listing["auto_bids"] == {"count": 1, "amount": 150_000}
    stored = await rows(
        database_url, "SELECT autobid_max_share_bps, auto_bid_count, auto_bid_amount"
        " FROM listings WHERE id = $1", UUID(listing["id"]),
    )
    assert [tuple(row) for row in stored] == [(5_000, 1, 150_000)]
    async with running_service(database_url, autobid_max_share_bps=8_000) as (_, client):
        rebuilt = await get_json(client, f"/v1/listings/{listing['id']}")
        assert rebuilt["policy"]["autobid_max_share_bps"] == 5_000
        assert rebuilt["auto_bids"] == {"count": 1, "amount": 150_000}


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"grades": []}, "validation_error", "grades"),
        ({"grades": ["B", "Z"]}, "validation_error", "grades.1"),
        ({"term_months_min": 24, "term_months_max": 12}, "term_range_inverted",
         "term_months_min"),
        ({"term_months_max": 61}, "validation_error", "term_months_max"),
        ({"amount_per_listing": 4_999}, "bid_below_minimum", "amount_per_listing"),
        ({"budget": 119_999}, "budget_below_amount_per_listing", "budget"),
        ({"min_rate_bps": 0}, "rate_out_of_range", "min_rate_bps"),
        ({"budget": "lots"}, "validation_error", "budget"),
        ({"grades": None}, "validation_error", "grades"),
        ({"colour": "red"}, "validation_error", "colour"),
    ],
)
async def test_a_bad_order_is_a_422_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, database_url: str, overrides: Json, code: str, field: str
) -> None:
    response = await client.post(PATH, headers=ADMIN, json=order_body(lender_id="l1",
                                                                       **overrides))
    assert field in error_fields(problem(response, 422, code))
    assert await rows(database_url, "SELECT id FROM standing_orders") == []


async def test_a_bad_change_is_a_422_and_changes_nothing(client: httpx.AsyncClient) -> None:
    order = await create_order(client)
    path = f"{PATH}/{order['id']}"
    problem(await client.patch(path, headers=ADMIN, json={}), 422, "validation_error")
    budget = problem(await client.patch(path, headers=ADMIN, json={"budget": 1}), 422,
                     "budget_below_amount_per_listing")
    assert error_fields(budget) == ["budget"]
    problem(await client.patch(path, headers=ADMIN, json={"active": "no"}), 422,
            "validation_error")
    assert await get_json(client, path) == order


async def test_money_no_account_could_hold_is_a_422_and_the_market_goes_on(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """An order's money is stored (bigint) and answered (JSON) as given: past 64 bits it could
    be neither, so the body is refused, not a failed journal batch that sends the market to
    rebuild its books (a 500, then 503s) or an order in memory only."""
    for overrides, field in (
        ({"budget": 2**63}, "budget"),
        ({"budget": 10**30}, "budget"),
        ({"amount_per_listing": 2**63, "budget": 10**15}, "amount_per_listing"),
    ):
        response = await client.post(PATH, headers=ADMIN, json=order_body(lender_id="l1",
                                                                           **overrides))
        assert error_fields(problem(response, 422, "validation_error")) == [field], overrides
    order = await create_order(client)
    path = f"{PATH}/{order['id']}"
    for budget in (2**63, 10**30):
        response = await client.patch(path, headers=ADMIN, json={"budget": budget})
        assert error_fields(problem(response, 422, "validation_error")) == ["budget"], budget
    assert await get_json(client, path) == order
    assert len(await rows(database_url, "SELECT id FROM standing_orders")) == 1


async def test_only_the_lender_or_an_admin_acts_on_an_order(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    l1, l2 = await make_key("lender", "l1"), await make_key("lender", "l2")
    bob = await make_key("borrower", "bob")
    mine = await create_order(client, None, headers=l1)
    assert mine["lender_id"] == "l1"
    path = f"{PATH}/{mine['id']}"
    problem(await client.post(PATH, headers=l1, json=order_body(lender_id="l2")), 403,
            "forbidden_subject")
    problem(await client.post(PATH, headers=bob, json=order_body()), 403, "forbidden_role")
    no_lender = await client.post(PATH, headers=ADMIN, json=order_body())
    assert error_fields(problem(no_lender, 422, "validation_error")) == ["lender_id"]
    for response in (
        await client.get(path, headers=l2),
        await client.patch(path, headers=l2, json={"active": False}),
        await client.delete(path, headers=l2),
        await client.get(PATH, headers=l2, params={"lender_id": "l1"}),
    ):
        problem(response, 403, "forbidden_subject")
    problem(await client.get(path, headers=bob), 403, "forbidden_role")
    problem(await client.get(f"{PATH}/{UUID(int=7)}", headers=l1), 404,
            "standing_order_not_found")
    problem(await client.get(f"{PATH}/not-a-uuid", headers=l1), 404, "standing_order_not_found")

    theirs = await create_order(client, "l2")
    assert [o["id"] for o in (await get_json(client, PATH, headers=l1))["data"]] == [mine["id"]]
    every = (await get_json(client, PATH))["data"]
    assert [o["id"] for o in every] == [theirs["id"], mine["id"]], "newest first"
    paused = await client.patch(path, headers=l1, json={"active": False})
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert (await client.patch(path, headers=ADMIN, json={"budget": 500_000})).json()[
        "budget"] == 500_000


async def test_orders_are_paged_with_a_cursor(client: httpx.AsyncClient) -> None:
    made = [(await create_order(client, "l1"))["id"] for _ in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"lender_id": "l1", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = await get_json(client, PATH, **params)
        seen += [o["id"] for o in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]
    problem(await client.get(PATH, headers=ADMIN, params={"cursor": "%%%"}), 422,
            "invalid_cursor")


async def test_a_retried_create_replays_the_first_answer_and_makes_one_order(
    client: httpx.AsyncClient, database_url: str
) -> None:
    keyed = {**ADMIN, "Idempotency-Key": "order-1"}
    first = await client.post(PATH, headers=keyed, json=order_body(lender_id="l1"))
    assert first.status_code == 201, first.text
    again = await client.post(PATH, headers=keyed, json=order_body(lender_id="l1"))
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    problem(await client.post(PATH, headers=keyed, json=order_body(lender_id="l2")), 422,
            "idempotency_key_reused")
    assert [str(r["id"]) for r in await rows(database_url, "SELECT id FROM standing_orders")] == [
        first.json()["id"]]


async def test_changes_are_committed_when_answered_and_retries_replay(
    client: httpx.AsyncClient, database_url: str
) -> None:
    order = await create_order(client)
    path = f"{PATH}/{order['id']}"
    stored = await rows(database_url, "SELECT * FROM standing_orders")
    assert [(r["lender_id"], r["grades"], r["budget"], r["ticket"], r["active"]) for r in
            stored] == [("l1", ["B"], 1_000_000, 1, True)]
    keyed = {**ADMIN, "Idempotency-Key": "pause-1"}
    paused = await client.patch(path, headers=keyed, json={"active": False, "budget": 600_000})
    assert paused.status_code == 200
    await client.patch(path, headers=ADMIN, json={"active": True})
    replayed = await client.patch(path, headers=keyed, json={"active": False, "budget": 600_000})
    assert (replayed.content, replayed.headers["Idempotent-Replayed"]) == (paused.content, "true")
    assert (await get_json(client, path))["active"] is True, "the replay did not act again"
    stored = await rows(database_url, "SELECT active, budget FROM standing_orders")
    assert [(r["active"], r["budget"]) for r in stored] == [(True, 600_000)]


async def test_a_deleted_order_is_gone_but_its_live_bids_stay(
    client: httpx.AsyncClient, database_url: str
) -> None:
    order = await create_order(client)
    listing = await open_listing(client)
    path = f"{PATH}/{order['id']}"
    keyed = {**ADMIN, "Idempotency-Key": "delete-1"}
    deleted = await client.delete(path, headers=keyed)
    assert (deleted.status_code, deleted.content) == (204, b"")
    again = await client.delete(path, headers=keyed)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (204, "true")
    problem(await client.delete(path, headers=ADMIN), 404, "standing_order_not_found")
    problem(await client.get(path, headers=ADMIN), 404, "standing_order_not_found")
    assert (await get_json(client, PATH, lender_id="l1"))["data"] == []
    bids = await listing_bids(client, listing["id"])
    assert [(b["standing_order_id"], b["status"]) for b in bids] == [(order["id"], "active")]
    later = await open_listing(client)
    assert later["auto_bids"] == {"count": 0, "amount": 0}
    stored = await rows(database_url, "SELECT deleted, reserved FROM standing_orders")
    assert [(r["deleted"], r["reserved"]) for r in stored] == [(True, 120_000)]


async def test_a_restart_brings_the_orders_and_the_queue_back_exactly(database_url: str) -> None:
    async with running_service(database_url) as (_, client):
        ids = [(await create_order(client, lender))["id"] for lender in ("l1", "l2", "l3")]
        await open_listing(client)  # l1 and l2 bid: the queue is now l3, l1, l2
        await client.patch(f"{PATH}/{ids[1]}", headers=ADMIN, json={"budget": 400_000})
        before = (await get_json(client, PATH))["data"]
    async with running_service(database_url, fund_lenders=False) as (_, client):
        assert (await get_json(client, PATH))["data"] == before
        listing = await open_listing(client)
        bids = await listing_bids(client, listing["id"])
        assert [b["standing_order_id"] for b in bids] == [ids[2], ids[0]]


async def test_a_stored_order_whose_reserved_money_is_not_its_live_bids_stops_the_rebuild(
    database_url: str,
) -> None:
    async with running_service(database_url) as (_, client):
        order = await create_order(client)
        await open_listing(client)
    await rows(database_url, "UPDATE standing_orders SET reserved = reserved + 1")
    with pytest.raises(RecoveryError, match=order["id"]):
        async with running_service(database_url, fund_lenders=False):
            pass
