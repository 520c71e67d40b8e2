"""Custody accounts over HTTP: deposits, withdrawals, balances, entries, and money moving with
bids (real Postgres: a 201 means the entry and the new balances are committed)."""

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import ADMIN, KeyMaker
from tests.integration.helpers import (
    Json,
    bid_body,
    error_fields,
    get_json,
    open_listing,
    problem,
    rows,
    wait_until_closed,
)
from tests.money import assert_conserved


async def deposit(
    client: httpx.AsyncClient, account: str, amount: int, headers: dict[str, str] = ADMIN
) -> httpx.Response:
    return await client.post(
        f"/v1/accounts/{account}/deposits", headers=headers,
        json={"amount": amount, "reference": f"wire {amount}"},
    )


async def withdraw(
    client: httpx.AsyncClient, account: str, amount: int, headers: dict[str, str] = ADMIN
) -> httpx.Response:
    return await client.post(
        f"/v1/accounts/{account}/withdrawals", headers=headers,
        json={"amount": amount, "reference": "to bank"},
    )


async def balances(client: httpx.AsyncClient, account: str) -> tuple[int, int]:
    found = await get_json(client, f"/v1/accounts/{account}")
    return found["available"], found["reserved"]


async def stored_balances(database_url: str) -> dict[str, tuple[int, int]]:
    found = await rows(database_url, "SELECT id, available, reserved FROM accounts")
    return {r["id"]: (r["available"], r["reserved"]) for r in found}


async def test_a_deposit_is_committed_with_its_entry_when_the_201_arrives(
    client: httpx.AsyncClient, database_url: str
) -> None:
    response = await deposit(client, "ivy", 250_000)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["account"] == {"id": "ivy", "currency": "CNY", "available": 250_000, "reserved": 0}
    entry = body["entry"]
    assert (entry["kind"], entry["debit_account"], entry["credit_account"], entry["amount"]) == (
        "deposit", "external", "ivy", 250_000)
    assert entry["cause"]["type"] == "deposit" and entry["reference"] == "wire 250000"
    stored = await rows(database_url, "SELECT * FROM ledger_entries WHERE id = $1", entry["id"])
    assert [(r["kind"], r["amount"], str(r["cause_id"])) for r in stored] == [
        ("deposit", 250_000, entry["cause"]["id"])]
    assert (await stored_balances(database_url))["ivy"] == (250_000, 0)


async def test_only_an_admin_reports_deposits(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    ivy = await make_key("lender", "ivy")
    bob = await make_key("borrower", "bob")
    problem(await deposit(client, "ivy", 1_000, ivy), 403, "forbidden_role")
    problem(await deposit(client, "bob", 1_000, bob), 403, "forbidden_role")
    assert "ivy" not in await stored_balances(database_url)


async def test_an_owner_or_an_admin_withdraws_available_money_and_nobody_else(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    ivy, eve = await make_key("lender", "ivy"), await make_key("lender", "eve")
    await deposit(client, "ivy", 100_000)
    problem(await withdraw(client, "ivy", 1_000, eve), 403, "forbidden_subject")
    mine = await withdraw(client, "ivy", 30_000, ivy)
    assert mine.status_code == 201, mine.text
    assert mine.json()["entry"]["credit_account"] == "external"
    assert (await withdraw(client, "ivy", 20_000)).status_code == 201
    assert await balances(client, "ivy") == (50_000, 0)


async def test_a_withdrawal_beyond_the_available_money_is_409_and_changes_nothing(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await deposit(client, "ivy", 100_000)
    listing = await open_listing(client)
    bid = await client.post(
        f"/v1/listings/{listing['id']}/bids", headers=ADMIN, json=bid_body(60_000, 1500, "ivy")
    )
    assert bid.status_code == 201, bid.text
    refused = problem(await withdraw(client, "ivy", 40_001), 409, "insufficient_funds")
    assert refused["available"] == 40_000, "reserved money cannot leave"
    assert await balances(client, "ivy") == (40_000, 60_000)
    kinds = await rows(
        database_url, "SELECT kind FROM ledger_entries WHERE debit_account = 'ivy' ORDER BY id"
    )
    assert [r["kind"] for r in kinds] == ["reserve"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 0, "reference": "x"}, "amount"),
        ({"amount": -5, "reference": "x"}, "amount"),
        ({"amount": 1.5, "reference": "x"}, "amount"),
        ({"amount": "100", "reference": "x"}, "amount"),
        ({"amount": 10**16, "reference": "x"}, "amount"),
        ({"amount": 100}, "reference"),
        ({"amount": 100, "reference": ""}, "reference"),
        ({"amount": 100, "reference": "x", "currency": "USD"}, "currency"),
    ],
)
async def test_bad_money_requests_are_422_and_change_nothing(
    client: httpx.AsyncClient, database_url: str, body: dict[str, Any], field: str
) -> None:
    await deposit(client, "ivy", 1_000)
    before = await stored_balances(database_url)
    for kind in ("deposits", "withdrawals"):
        response = await client.post(f"/v1/accounts/ivy/{kind}", headers=ADMIN, json=body)
        assert field in error_fields(problem(response, 422, "validation_error"))
    assert await stored_balances(database_url) == before


async def test_unknown_and_forbidden_accounts_are_clear_problems(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    problem(await withdraw(client, "nobody", 1), 404, "account_not_found")
    problem(await client.get("/v1/accounts/nobody", headers=ADMIN), 404, "account_not_found")
    problem(await deposit(client, "external", 1), 422, "account_not_allowed")
    bad = await client.get("/v1/accounts/bad%20id", headers=ADMIN)
    problem(bad, 422, "validation_error")
    await deposit(client, "ivy", 1_000)
    eve = await make_key("lender", "eve")
    problem(await client.get("/v1/accounts/ivy", headers=eve), 403, "forbidden_subject")
    problem(await client.get("/v1/accounts/ivy/entries", headers=eve), 403, "forbidden_subject")
    problem(await client.get("/v1/platform/accounts", headers=eve), 403, "forbidden_role")


async def test_a_bid_beyond_the_lenders_funds_is_409_with_what_is_available_and_stores_nothing(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    await deposit(client, "ivy", 20_000)
    ivy = await make_key("lender", "ivy")
    listing = await open_listing(client)
    path = f"/v1/listings/{listing['id']}/bids"
    refused = await client.post(path, headers=ivy, json=bid_body(20_001, 1500, None))
    assert problem(refused, 409, "insufficient_funds")["available"] == 20_000
    assert await rows(database_url, "SELECT 1 FROM bids") == []
    exact = await client.post(path, headers=ivy, json=bid_body(20_000, 1500, None))
    assert exact.status_code == 201, exact.text
    assert await balances(client, "ivy") == (0, 20_000)


async def test_concurrent_bids_racing_for_one_lenders_last_funds_never_overdraw_it(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await deposit(client, "ivy", 50_000)
    listings = [await open_listing(client, amount=1_000_000) for _ in range(3)]

    async def bid(i: int) -> httpx.Response:
        listing = listings[i % 3]["id"]
        return await client.post(
            f"/v1/listings/{listing}/bids", headers=ADMIN,
            json=bid_body(5_000 + 1_000 * (i % 4), 1000 + i, "ivy"),
        )

    answers = await asyncio.gather(*(bid(i) for i in range(40)))
    assert {a.status_code for a in answers} <= {201, 409}
    accepted = [a.json()["amount"] for a in answers if a.status_code == 201]
    assert 0 < sum(accepted) <= 50_000
    refusals = [a.json() for a in answers if a.status_code == 409]
    assert refusals and {r["code"] for r in refusals} == {"insufficient_funds"}
    assert await balances(client, "ivy") == (50_000 - sum(accepted), sum(accepted))
    assert (await stored_balances(database_url))["ivy"] == (50_000 - sum(accepted), sum(accepted))


async def test_an_account_lists_its_entries_oldest_first_with_a_cursor(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    for amount in (1_000, 2_000, 3_000):
        await deposit(client, "ivy", amount)
    await withdraw(client, "ivy", 500)
    ivy = await make_key("lender", "ivy")
    first = await get_json(client, "/v1/accounts/ivy/entries", ivy, limit=3)
    assert [(e["kind"], e["amount"]) for e in first["data"]] == [
        ("deposit", 1_000), ("deposit", 2_000), ("deposit", 3_000)]
    rest = await get_json(client, "/v1/accounts/ivy/entries", ivy, after=first["next_after"])
    assert [(e["kind"], e["amount"]) for e in rest["data"]] == [("withdrawal", 500)]
    empty = await get_json(client, "/v1/accounts/ivy/entries", ivy, after=rest["next_after"])
    assert empty == {"data": [], "next_after": rest["next_after"]}


async def test_money_follows_an_auction_from_deposit_to_loan(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """The story the docs tell: who has what after each step."""
    for lender, amount in (("ivy", 200_000), ("jon", 150_000), ("kim", 100_000)):
        await deposit(client, lender, amount)
    listing = await open_listing(
        client, borrower_id="bea", amount=200_000, grade="C", duration_s=1
    )
    path = f"/v1/listings/{listing['id']}/bids"

    async def bid(lender: str, amount: int, rate: int) -> Json:
        response = await client.post(path, headers=ADMIN, json=bid_body(amount, rate, lender))
        assert response.status_code == 201, response.text
        placed: Json = response.json()
        return placed

    await bid("kim", 100_000, 1800)
    await bid("ivy", 120_000, 1200)
    assert await balances(client, "kim") == (0, 100_000)
    await bid("jon", 100_000, 1300)  # covers 220,000: kim's 18 % bid is pushed out
    assert await balances(client, "kim") == (100_000, 0), "outbid: released"
    closed = await wait_until_closed(client, listing["id"], database_url)
    assert closed["status"] == "funded"
    reserve = 4_000  # grade C: 200 bps of 200,000
    assert await balances(client, "ivy") == (80_000, 0)
    assert await balances(client, "jon") == (70_000, 0), "80,000 filled, 20,000 released"
    assert await balances(client, "bea") == (200_000 - reserve, 0)
    pools = await get_json(client, "/v1/platform/accounts")
    assert [(p["id"], p["available"]) for p in pools["data"]] == [
        ("platform:fees", 0), ("platform:reserve", reserve)]
    conn = await asyncpg.connect(database_url)
    try:
        await assert_conserved(conn)
    finally:
        await conn.close()
