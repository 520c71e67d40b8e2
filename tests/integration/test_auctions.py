"""Whole auctions through HTTP: to the deadline, failed, accepted early, cancelled."""

from collections import defaultdict
from datetime import date, datetime
from uuid import UUID

import httpx

from tests.integration.conftest import ADMIN, KeyMaker
from tests.integration.helpers import (
    Json,
    all_events,
    bid_body,
    get_json,
    open_listing,
    place_bid,
    problem,
    rows,
    wait_until_closed,
)


async def test_a_uniform_auction_runs_to_its_deadline_and_books_a_loan_at_the_clearing_rate(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    bob = await make_key("borrower", "bob")
    lenders = {name: await make_key("lender", name) for name in ("l1", "l2", "l3", "l4")}
    listing = await open_listing(
        client, bob, amount=300_000, term_months=12, max_rate_bps=2000, grade="A",
        duration_s=1, pricing="uniform",
    )
    lid = listing["id"]

    async def bid(lender: str, amount: int, rate: int) -> Json:
        return await place_bid(client, lid, amount, rate, lenders[lender], lender_id=None)

    b1 = await bid("l1", 150_000, 1200)
    b2 = await bid("l2", 100_000, 1500)
    b3 = await bid("l3", 100_000, 1800)
    assert b3["allocated_amount"] == 50_000, "the marginal bid is partly in the set"
    refused = await client.post(f"/v1/listings/{lid}/bids", headers=lenders["l4"],
                                json=bid_body(100_000, 1800, None))
    assert problem(refused, 409, "bid_not_competitive")["marginal_rate_bps"] == 1800
    b4 = await bid("l4", 100_000, 1000)  # pushes l3 out, l2 becomes the marginal bid
    refused = await client.post(f"/v1/listings/{lid}/bids", headers=lenders["l4"],
                                json=bid_body(100_000, 1500, None))
    assert problem(refused, 409, "bid_not_competitive")["marginal_rate_bps"] == 1500

    live = await get_json(client, f"/v1/listings/{lid}", bob)
    assert (live["status"], live["funded_amount"], live["bid_count"]) == ("open", 300_000, 4)
    assert live["marginal_rate_bps"] == 1500
    assert (await get_json(client, f"/v1/bids/{b3['id']}", lenders["l3"]))["status"] == "outbid"

    closed = await wait_until_closed(client, lid, database_url)
    assert (closed["status"], closed["close_reason"], closed["funded_amount"]) == (
        "funded", "deadline", 300_000,
    )
    assert closed["closed_at"] == closed["closes_at"], "resolved as of its deadline"
    assert closed["loan_id"] is not None

    loan = await get_json(client, f"/v1/loans/{closed['loan_id']}", lenders["l1"])
    assert (loan["listing_id"], loan["borrower_id"], loan["principal"], loan["rate_bps"],
            loan["term_months"], loan["pricing"], loan["currency"]) == (
        lid, "bob", 300_000, 1500, 12, "uniform", "CNY",
    )
    fills = sorted((f["bid_id"], f["lender_id"], f["amount"], f["rate_bps"]) for f in loan["fills"])
    assert fills == sorted([
        (b1["id"], "l1", 150_000, 1500), (b2["id"], "l***", 50_000, 1500),
        (b4["id"], "l***", 100_000, 1500),
    ]), "every fill at l2's own 15 % (the first unit left out); l1 sees others masked"
    assert all("schedule" not in f or f["schedule"] is None for f in loan["fills"])

    schedule = loan["schedule"]
    assert [row["n"] for row in schedule] == list(range(1, 13))
    assert sum(row["principal"] for row in schedule) == 300_000
    assert schedule[-1]["balance"] == 0
    assert all(row["payment"] == row["principal"] + row["interest"] for row in schedule)
    funded_on = datetime.fromisoformat(loan["funded_at"]).date()
    first_due = date.fromisoformat(schedule[0]["due_date"])
    assert (first_due.year * 12 + first_due.month) - (funded_on.year * 12 + funded_on.month) == 1

    with_fills = await get_json(client, f"/v1/loans/{closed['loan_id']}", ADMIN,
                                fill_schedules="true")
    assert with_fills["schedule"] == schedule
    summed: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for fill in with_fills["fills"]:
        assert sum(row["principal"] for row in fill["schedule"]) == fill["amount"]
        assert [row["due_date"] for row in fill["schedule"]] == [r["due_date"] for r in schedule]
        for row in fill["schedule"]:
            for column in ("payment", "principal", "interest", "balance"):
                summed[row["n"]][column] += row[column]
    for row in schedule:
        assert {c: summed[row["n"]][c] for c in ("payment", "principal", "interest", "balance")} \
            == {c: row[c] for c in ("payment", "principal", "interest", "balance")}

    final = {b["id"]: (b["status"], b["allocated_amount"])
             for b in (await get_json(client, f"/v1/listings/{lid}/bids"))["data"]}
    assert final == {
        b4["id"]: ("won", 100_000), b1["id"]: ("won", 150_000), b2["id"]: ("won", 50_000),
        b3["id"]: ("outbid", 0),
    }
    assert (await get_json(client, f"/v1/bids/{b2['id']}", lenders["l2"]))["status"] == "won"

    stored_loan = await rows(database_url, "SELECT * FROM loans WHERE listing_id = $1", UUID(lid))
    assert [(str(r["id"]), r["principal"], r["rate_bps"]) for r in stored_loan] == [
        (closed["loan_id"], 300_000, 1500),
    ]
    stored_fills = await rows(database_url, "SELECT bid_id, amount FROM fills ORDER BY seq")
    assert [(str(r["bid_id"]), r["amount"]) for r in stored_fills] == [
        (b1["id"], 150_000), (b2["id"], 50_000), (b4["id"], 100_000),
    ]
    stored_bids = await rows(database_url, "SELECT id, status FROM bids")
    assert {str(r["id"]): r["status"] for r in stored_bids} == {k: v[0] for k, v in final.items()}

    kinds = [e["type"] for e in await all_events(client) if e["data"].get("listing_id") == lid
             or e["data"].get("listing", {}).get("id") == lid or e["data"].get("id") == lid]
    assert kinds == ["listing.opened"] + ["bid.placed"] * 4 + ["bid.outbid", "listing.funded"]

    for action in ("accept", "cancel"):
        problem(await client.post(f"/v1/listings/{lid}/{action}", headers=bob),
                409, "listing_not_open")
    late = await client.post(f"/v1/listings/{lid}/bids", headers=lenders["l4"],
                             json=bid_body(100_000, 900, None))
    problem(late, 409, "listing_not_open")


async def test_a_listing_under_its_min_funding_fails_at_the_deadline_and_every_bid_is_lost(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing = await open_listing(client, amount=300_000, min_funding_bps=7000, duration_s=1)
    lid = listing["id"]
    bids = [await place_bid(client, lid, 100_000, 1500, lender_id="l1"),
            await place_bid(client, lid, 50_000, 1600, lender_id="l2")]
    early = await client.post(f"/v1/listings/{lid}/accept", headers=ADMIN)
    problem(early, 409, "below_min_funding")

    closed = await wait_until_closed(client, lid, database_url)
    assert (closed["status"], closed["close_reason"], closed["loan_id"], closed["funded_amount"]) \
        == ("failed", "deadline", None, 150_000)
    assert {b["status"] for b in (await get_json(client, f"/v1/listings/{lid}/bids"))["data"]} \
        == {"lost"}
    for bid in bids:
        assert (await get_json(client, f"/v1/bids/{bid['id']}"))["status"] == "lost"
    stored = await rows(database_url, "SELECT status FROM bids WHERE listing_id = $1", UUID(lid))
    assert [r["status"] for r in stored] == ["lost", "lost"]
    listing_row = await rows(database_url, "SELECT * FROM listings WHERE id = $1", UUID(lid))
    assert (listing_row[0]["status"], listing_row[0]["loan_id"]) == ("failed", None)
    assert await rows(database_url, "SELECT id FROM loans") == []

    failed = await all_events(client, type="listing.failed")
    assert len(failed) == 1
    assert failed[0]["data"]["listing"]["id"] == lid
    assert (failed[0]["data"]["covered"], failed[0]["data"]["required"]) == (150_000, 210_000)
    late = await client.post(f"/v1/listings/{lid}/bids", headers=ADMIN, json=bid_body(50_000, 1000))
    assert problem(late, 409, "listing_not_open")["detail"] == "listing is failed"


async def test_the_borrower_accepts_early_once_min_funding_is_covered(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    bob = await make_key("borrower", "bob")
    listing = await open_listing(client, bob, amount=300_000, min_funding_bps=5000)
    lid = listing["id"]
    first = await place_bid(client, lid, 100_000, 1500, lender_id="l1")
    problem(await client.post(f"/v1/listings/{lid}/accept", headers=bob), 409, "below_min_funding")
    second = await place_bid(client, lid, 60_000, 1800, lender_id="l2")

    response = await client.post(f"/v1/listings/{lid}/accept", headers=bob)
    assert response.status_code == 200, response.text
    accepted = response.json()
    assert (accepted["status"], accepted["close_reason"], accepted["funded_amount"]) == (
        "funded", "accepted", 160_000,
    )
    assert accepted["loan_id"] is not None, "the answer names the loan it booked"
    assert accepted["closed_at"] is not None
    assert await get_json(client, f"/v1/listings/{lid}") == accepted

    loan = await get_json(client, f"/v1/loans/{accepted['loan_id']}", bob)
    assert loan["principal"] == 160_000
    assert loan["rate_bps"] == 1613, "pay as bid: (100k x 1500 + 60k x 1800) / 160k, half up"
    assert sorted((f["bid_id"], f["amount"], f["rate_bps"]) for f in loan["fills"]) == sorted([
        (first["id"], 100_000, 1500), (second["id"], 60_000, 1800),
    ])
    assert sum(row["principal"] for row in loan["schedule"]) == 160_000
    stored = await rows(database_url, "SELECT status, close_reason, loan_id FROM listings")
    assert [(r["status"], r["close_reason"], str(r["loan_id"])) for r in stored] == [
        ("funded", "accepted", accepted["loan_id"]),
    ]


async def test_cancelling_a_listing_releases_every_bid(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    bob = await make_key("borrower", "bob")
    listing = await open_listing(client, bob, amount=100_000)
    lid = listing["id"]
    await place_bid(client, lid, 100_000, 1500, lender_id="l1")
    await place_bid(client, lid, 100_000, 1200, lender_id="l2")  # pushes l1 out

    response = await client.post(f"/v1/listings/{lid}/cancel", headers=bob)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["close_reason"], cancelled["loan_id"]) == (
        "cancelled", "cancelled", None,
    )
    statuses = [b["status"] for b in (await get_json(client, f"/v1/listings/{lid}/bids"))["data"]]
    assert statuses == ["lost", "outbid"]
    stored = await rows(database_url, "SELECT status FROM bids ORDER BY min_rate_bps")
    assert [r["status"] for r in stored] == ["lost", "outbid"]
    assert (await rows(database_url, "SELECT status FROM listings"))[0]["status"] == "cancelled"
    events = await all_events(client, type="listing.cancelled")
    assert [e["data"]["listing"]["id"] for e in events] == [lid]
    problem(await client.post(f"/v1/listings/{lid}/cancel", headers=bob), 409, "listing_not_open")
    problem(await client.post(f"/v1/listings/{lid}/accept", headers=bob), 409, "listing_not_open")


async def test_an_admin_may_cancel_any_listing(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    listing = await open_listing(client, await make_key("borrower", "bob"))
    response = await client.post(f"/v1/listings/{listing['id']}/cancel", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
