"""/v1/listings over HTTP and real Postgres: open, read, validate, filter, paginate, depth."""

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import httpx

from tests.integration.conftest import ADMIN, KeyMaker
from tests.integration.helpers import (
    error_fields,
    get_json,
    listing_body,
    open_listing,
    place_bid,
    problem,
    rows,
)


async def test_a_borrower_opens_a_listing_that_is_in_postgres_when_the_201_arrives(
    client: httpx.AsyncClient, make_key: KeyMaker, database_url: str
) -> None:
    bob = await make_key("borrower", "bob")
    response = await client.post("/v1/listings", headers=bob, json=listing_body(
        borrower_id=None, amount=250_000, term_months=24, max_rate_bps=1800, grade="AA",
        min_funding_bps=7000, pricing="uniform",
    ))
    assert response.status_code == 201, response.text
    listing = response.json()
    assert listing["borrower_id"] == "bob", "the borrower defaults to the key's subject"
    assert UUID(listing["id"])
    assert {k: listing[k] for k in (
        "amount", "currency", "term_months", "max_rate_bps", "grade", "min_funding_bps",
        "close_when_funded", "pricing", "status", "funded_amount", "bid_count",
        "marginal_rate_bps", "closed_at", "close_reason", "loan_id",
    )} == {
        "amount": 250_000, "currency": "CNY", "term_months": 24, "max_rate_bps": 1800,
        "grade": "AA", "min_funding_bps": 7000, "close_when_funded": False,
        "pricing": "uniform", "status": "open", "funded_amount": 0, "bid_count": 0,
        "marginal_rate_bps": None, "closed_at": None, "close_reason": None, "loan_id": None,
    }
    opened = datetime.fromisoformat(listing["opened_at"])
    closes = datetime.fromisoformat(listing["closes_at"])
    assert closes - opened == timedelta(seconds=60)
    stored = await rows(database_url, "SELECT * FROM listings WHERE id = $1", UUID(listing["id"]))
    assert len(stored) == 1
    assert stored[0]["borrower_id"] == "bob"
    assert stored[0]["amount"] == 250_000
    assert stored[0]["status"] == "open"
    assert stored[0]["seq"] == listing["seq"]
    assert await get_json(client, f"/v1/listings/{listing['id']}", bob) == listing


async def test_the_listing_defaults_are_pay_as_bid_all_or_nothing_running_to_the_deadline(
    client: httpx.AsyncClient,
) -> None:
    listing = await open_listing(client)
    assert listing["pricing"] == "pay_as_bid"
    assert listing["min_funding_bps"] == 10_000
    assert listing["close_when_funded"] is False


async def test_closes_at_sets_the_deadline_instead_of_a_duration(client: httpx.AsyncClient) -> None:
    closes_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    listing = await open_listing(client, duration_s=None, closes_at=closes_at.isoformat())
    assert datetime.fromisoformat(listing["closes_at"]) == closes_at
    for spelling in (closes_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     closes_at.astimezone(timezone(timedelta(hours=8))).isoformat(),
                     closes_at.strftime("%Y-%m-%dt%H:%M:%S.000z")):
        other = await open_listing(client, duration_s=None, closes_at=spelling)
        assert datetime.fromisoformat(other["closes_at"]) == closes_at, spelling


async def test_an_admin_must_name_the_borrower(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/listings", headers=ADMIN, json=listing_body(borrower_id=None))
    assert error_fields(problem(response, 422, "validation_error")) == ["borrower_id"]


async def test_exactly_one_of_closes_at_and_duration_is_required(
    client: httpx.AsyncClient,
) -> None:
    for overrides in ({"duration_s": None}, {"closes_at": "2099-01-01T00:00:00Z"}):
        response = await client.post("/v1/listings", headers=ADMIN, json=listing_body(**overrides))
        assert error_fields(problem(response, 422, "validation_error")) == ["body"], overrides


BAD_TERMS: list[tuple[dict[str, Any], str, str]] = [
    ({"amount": 99_999}, "amount_out_of_range", "amount"),
    ({"amount": 1_000_000_001}, "amount_out_of_range", "amount"),
    ({"max_rate_bps": 3601}, "rate_out_of_range", "max_rate_bps"),
    ({"max_rate_bps": 0}, "rate_out_of_range", "max_rate_bps"),
    ({"duration_s": 30 * 24 * 3600 + 1}, "window_out_of_range", "closes_at"),
    ({"duration_s": None, "closes_at": "2020-01-01T00:00:00Z"}, "window_out_of_range", "closes_at"),
    ({"duration_s": 0}, "validation_error", "duration_s"),
    ({"term_months": 0}, "validation_error", "term_months"),
    ({"term_months": 61}, "validation_error", "term_months"),
    ({"min_funding_bps": 0}, "validation_error", "min_funding_bps"),
    ({"min_funding_bps": 10_001}, "validation_error", "min_funding_bps"),
    ({"grade": "Z"}, "validation_error", "grade"),
    ({"grade": "aa"}, "validation_error", "grade"),
    ({"pricing": "vickrey"}, "validation_error", "pricing"),
    ({"duration_s": None, "closes_at": "2099-01-01T00:00:00"}, "validation_error", "closes_at"),
    ({"borrower_id": "bob smith"}, "validation_error", "borrower_id"),
]


async def test_listing_terms_out_of_range_are_422_with_their_code_and_field_and_store_nothing(
    client: httpx.AsyncClient, database_url: str
) -> None:
    for overrides, code, field in BAD_TERMS:
        response = await client.post("/v1/listings", headers=ADMIN, json=listing_body(**overrides))
        assert error_fields(problem(response, 422, code)) == [field], overrides
    assert await rows(database_url, "SELECT id FROM listings") == []


async def test_unknown_listing_ids_are_404_on_every_listing_route_even_when_not_uuids(
    client: httpx.AsyncClient,
) -> None:
    for listing_id in (str(uuid4()), "not-a-uuid", "12345"):
        for path in ("", "/bids", "/book"):
            problem(await client.get(f"/v1/listings/{listing_id}{path}", headers=ADMIN),
                    404, "listing_not_found")
        for action in ("accept", "cancel"):
            problem(await client.post(f"/v1/listings/{listing_id}/{action}", headers=ADMIN),
                    404, "listing_not_found")
        response = await client.post(f"/v1/listings/{listing_id}/bids", headers=ADMIN, json={
            "amount": 10_000, "min_rate_bps": 1000, "lender_id": "lena",
        })
        problem(response, 404, "listing_not_found")


async def test_a_listing_id_in_upper_case_names_the_same_listing(
    client: httpx.AsyncClient,
) -> None:
    listing = await open_listing(client)
    shouted = listing["id"].upper()
    bid = await place_bid(client, shouted, 100_000, 1500)
    assert bid["listing_id"] == listing["id"]
    read = await get_json(client, f"/v1/listings/{shouted}")
    assert read["id"] == listing["id"]
    assert read["bid_count"] == 1
    assert [b["id"] for b in (await get_json(client, f"/v1/listings/{shouted}/bids"))["data"]] == [
        bid["id"]
    ]
    cancelled = await client.post(f"/v1/listings/{shouted}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


async def test_the_book_lists_bids_in_priority_order_and_depth_by_rate_level(
    client: httpx.AsyncClient,
) -> None:
    listing = await open_listing(client, amount=300_000)
    path = f"/v1/listings/{listing['id']}"
    first = await place_bid(client, listing["id"], 100_000, 1500)
    second = await place_bid(client, listing["id"], 50_000, 1200)
    third = await place_bid(client, listing["id"], 50_000, 1500)
    fourth = await place_bid(client, listing["id"], 150_000, 1800)
    book = (await get_json(client, f"{path}/bids"))["data"]
    assert [b["id"] for b in book] == [second["id"], first["id"], third["id"], fourth["id"]]
    assert [b["allocated_amount"] for b in book] == [50_000, 100_000, 50_000, 100_000]
    assert [b["status"] for b in book] == ["active"] * 4
    depth = (await get_json(client, f"{path}/book"))["data"]
    assert depth == [
        {"rate_bps": 1200, "amount": 50_000, "bid_count": 1, "allocated_amount": 50_000},
        {"rate_bps": 1500, "amount": 150_000, "bid_count": 2, "allocated_amount": 150_000},
        {"rate_bps": 1800, "amount": 150_000, "bid_count": 1, "allocated_amount": 100_000},
    ]
    listing = await get_json(client, path)
    assert listing["funded_amount"] == 300_000
    assert listing["marginal_rate_bps"] == 1800
    assert listing["bid_count"] == 4


async def test_the_book_and_depth_of_a_closed_listing_are_read_back_from_postgres(
    client: httpx.AsyncClient,
) -> None:
    listing = await open_listing(client, amount=100_000, close_when_funded=True)
    path = f"/v1/listings/{listing['id']}"
    cheap = await place_bid(client, listing["id"], 40_000, 1000)
    dear = await place_bid(client, listing["id"], 60_000, 1400)
    assert (await get_json(client, path))["status"] == "funded"
    book = (await get_json(client, f"{path}/bids"))["data"]
    assert [(b["id"], b["status"], b["allocated_amount"]) for b in book] == [
        (cheap["id"], "won", 40_000), (dear["id"], "won", 60_000),
    ]
    assert (await get_json(client, f"{path}/book"))["data"] == [
        {"rate_bps": 1000, "amount": 40_000, "bid_count": 1, "allocated_amount": 40_000},
        {"rate_bps": 1400, "amount": 60_000, "bid_count": 1, "allocated_amount": 60_000},
    ]


async def test_listings_filter_by_status_and_grade(client: httpx.AsyncClient) -> None:
    a_open = await open_listing(client, grade="A")
    b_open = await open_listing(client, grade="B")
    a_cancelled = await open_listing(client, grade="A")
    hr_cancelled = await open_listing(client, grade="HR")
    for listing in (a_cancelled, hr_cancelled):
        response = await client.post(f"/v1/listings/{listing['id']}/cancel", headers=ADMIN)
        assert response.status_code == 200, response.text

    async def ids(**params: str) -> list[str]:
        page = await get_json(client, "/v1/listings", ADMIN, **params)
        assert page["next_cursor"] is None
        return [listing["id"] for listing in page["data"]]

    newest_first = [hr_cancelled["id"], a_cancelled["id"], b_open["id"], a_open["id"]]
    assert await ids() == newest_first
    assert await ids(status="open") == [b_open["id"], a_open["id"]]
    assert await ids(status="cancelled") == [hr_cancelled["id"], a_cancelled["id"]]
    assert await ids(grade="A") == [a_cancelled["id"], a_open["id"]]
    assert await ids(status="open", grade="A") == [a_open["id"]]
    assert await ids(status="funded") == []
    page = await get_json(client, "/v1/listings", status="cancelled")
    assert {listing["status"] for listing in page["data"]} == {"cancelled"}


async def test_cursor_pagination_walks_every_listing_once(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    opened = [(await open_listing(client, grade="C"))["id"] for _ in range(7)]
    await open_listing(client, grade="D")
    lender = await make_key("lender", "lena")  # any key may list
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"grade": "C", "limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = await get_json(client, "/v1/listings", lender, **params)
        pages += 1
        assert len(page["data"]) <= 3
        seen.extend(listing["id"] for listing in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"
    assert pages == 3
    assert len(seen) == len(set(seen)), "no listing twice"
    assert seen == list(reversed(opened)), "newest first, every one of them"


async def test_a_cursor_the_api_did_not_give_is_422_never_500(client: httpx.AsyncClient) -> None:
    for cursor in (
        "!!!", "bm90LWEtbnVtYmVy",  # not base64; base64 of "not-a-number"
        base64.urlsafe_b64encode(b"9" * 40).decode(),  # a number past bigint
        base64.urlsafe_b64encode(b"-5").decode(),
    ):
        for path in ("/v1/listings", "/v1/lenders/lena/bids"):
            response = await client.get(path, headers=ADMIN, params={"cursor": cursor})
            assert error_fields(problem(response, 422, "invalid_cursor")) == ["cursor"], cursor


async def test_bad_listing_filters_are_422_naming_the_parameter(client: httpx.AsyncClient) -> None:
    for params, field in (
        ({"status": "closed"}, "status"), ({"grade": "F"}, "grade"), ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"), ({"limit": "ten"}, "limit"),
    ):
        response = await client.get("/v1/listings", headers=ADMIN, params=params)
        assert error_fields(problem(response, 422, "validation_error")) == [field], params
