import httpx

from tests.integration.conftest import ADMIN


async def test_a_listing_opens_and_takes_a_bid(client: httpx.AsyncClient) -> None:
    listing = await client.post("/v1/listings", headers=ADMIN, json={
        "borrower_id": "bob", "amount": 300_000, "term_months": 12, "max_rate_bps": 2000,
        "grade": "A", "duration_s": 60,
    })
    assert listing.status_code == 201, listing.text
    bid = await client.post(f"/v1/listings/{listing.json()['id']}/bids", headers=ADMIN, json={
        "amount": 100_000, "min_rate_bps": 1500, "lender_id": "lena",
    })
    assert bid.status_code == 201, bid.text
    assert bid.json()["allocated_amount"] == 100_000
