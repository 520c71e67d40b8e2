"""/v1/loans and the /v1/events log: read back what an auction booked and announced."""

from uuid import UUID, uuid4

import httpx

from tests.integration.conftest import ADMIN, KeyMaker
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


async def _funded_listing(client: httpx.AsyncClient) -> tuple[Json, list[Json]]:
    """A listing accepted early and funded, with one bid outbid on the way."""
    listing = await open_listing(client, amount=200_000)
    lid = listing["id"]
    bids = [
        await place_bid(client, lid, 150_000, 1800, lender_id="dora"),
        await place_bid(client, lid, 150_000, 1300, lender_id="chen"),
        await place_bid(client, lid, 100_000, 1100, lender_id="abe"),  # pushes dora out
    ]
    accepted = await client.post(f"/v1/listings/{lid}/accept", headers=ADMIN)
    assert accepted.status_code == 200, accepted.text
    return await get_json(client, f"/v1/listings/{lid}"), bids


async def test_any_key_reads_a_loan_with_fills_and_the_borrower_schedule(
    client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    listing, bids = await _funded_listing(client)
    for headers in (await make_key("lender", "zoe"), await make_key("borrower", "someone")):
        loan = await get_json(client, f"/v1/loans/{listing['loan_id']}", headers)
        assert loan["id"] == listing["loan_id"]
        assert loan["principal"] == 200_000
        assert {f["lender_id"]: (f["amount"], f["rate_bps"]) for f in loan["fills"]} == {
            "a***": (100_000, 1100), "ch***": (100_000, 1300),
        }, "other lenders' ids are masked"
        assert loan["rate_bps"] == 1200
        assert len(loan["schedule"]) == 12
        assert sum(r["principal"] for r in loan["schedule"]) == 200_000
        assert set(loan["schedule"][0]) == {
            "n", "due_date", "payment", "principal", "interest", "balance",
        }
    assert bids[0]["id"] not in {f["bid_id"] for f in loan["fills"]}


async def test_unknown_loan_ids_are_404_even_when_not_uuids(client: httpx.AsyncClient) -> None:
    for loan_id in (str(uuid4()), "loan-1"):
        problem(await client.get(f"/v1/loans/{loan_id}", headers=ADMIN), 404, "loan_not_found")


async def test_fill_schedules_must_be_a_boolean(client: httpx.AsyncClient) -> None:
    listing, _ = await _funded_listing(client)
    response = await client.get(f"/v1/loans/{listing['loan_id']}", headers=ADMIN,
                                params={"fill_schedules": "perhaps"})
    assert error_fields(problem(response, 422, "validation_error")) == ["fill_schedules"]


async def test_the_event_log_is_ordered_by_seq_and_walks_with_the_after_cursor(
    client: httpx.AsyncClient,
) -> None:
    listing, _ = await _funded_listing(client)
    everything = await get_json(client, "/v1/events", limit=1000)
    events = everything["data"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert everything["next_after"] == seqs[-1]
    assert [e["type"] for e in events] == [
        "listing.opened", "bid.placed", "bid.placed", "bid.placed", "bid.outbid",
        "listing.funded",
    ]
    assert all(UUID(e["id"]) and e["created_at"].endswith("Z") for e in events)

    walked: list[Json] = []
    after = 0
    while True:
        page = await get_json(client, "/v1/events", after=after, limit=2)
        assert len(page["data"]) <= 2
        if not page["data"]:
            assert page["next_after"] == after, "an empty page keeps the cursor"
            break
        assert all(e["seq"] > after for e in page["data"])
        walked.extend(page["data"])
        after = page["next_after"]
    assert walked == events

    tail = await get_json(client, "/v1/events", after=seqs[2])
    assert [e["seq"] for e in tail["data"]] == seqs[3:]


async def test_the_event_log_filters_by_type(client: httpx.AsyncClient) -> None:
    await _funded_listing(client)
    page = await get_json(client, "/v1/events", type="bid.outbid")
    assert [e["type"] for e in page["data"]] == ["bid.outbid"]
    assert page["data"][0]["data"]["lender_id"] == "dora"
    response = await client.get("/v1/events", headers=ADMIN,
                                params=[("type", "listing.opened"), ("type", "listing.funded")])
    assert [e["type"] for e in response.json()["data"]] == ["listing.opened", "listing.funded"]
    bad = await client.get("/v1/events", headers=ADMIN, params={"type": "loan.booked"})
    assert error_fields(problem(bad, 422, "validation_error")) == ["type.0"]
    bad = await client.get("/v1/events", headers=ADMIN, params={"after": -1})
    assert error_fields(problem(bad, 422, "validation_error")) == ["after"]


async def test_listing_funded_carries_the_listing_the_loan_and_its_fills(
    client: httpx.AsyncClient, database_url: str
) -> None:
    listing, _ = await _funded_listing(client)
    funded = await all_events(client, type="listing.funded")
    assert len(funded) == 1
    data = funded[0]["data"]
    assert data["listing"]["id"] == listing["id"]
    assert data["listing"]["status"] == "funded"
    assert data["listing"]["loan_id"] == listing["loan_id"]
    loan = await get_json(client, f"/v1/loans/{listing['loan_id']}")
    assert data["loan"]["id"] == loan["id"]
    assert data["loan"]["principal"] == loan["principal"] == 200_000
    assert data["loan"]["rate_bps"] == loan["rate_bps"]
    assert sorted(data["loan"]["fills"], key=lambda f: f["bid_id"]) == sorted(
        loan["fills"], key=lambda f: f["bid_id"]
    )
    stored = await rows(database_url, "SELECT type, listing_id FROM events ORDER BY seq")
    assert [r["type"] for r in stored][-1] == "listing.funded"
    assert {r["listing_id"] for r in stored} == {UUID(listing["id"])}
