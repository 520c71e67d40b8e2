"""A whole auction against the real process: open, bid, get outbid, the deadline fires, a loan,
and the money: frozen by each bid, freed by the outbid, paid to the borrower less the reserve."""

import asyncpg
import httpx

from tests.e2e.conftest import FUNDS, ServiceProcess, fund
from tests.e2e.drive import bid_ok, get_json, open_listing, place_bid, until_closed


async def balances(client: httpx.AsyncClient, account: str) -> tuple[int, int]:
    found = await get_json(client, f"/v1/accounts/{account}")
    return found["available"], found["reserved"]


async def test_an_auction_over_http_books_a_loan_from_the_cheapest_bids_when_its_deadline_fires(
    service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]"
) -> None:
    async with service.client() as client:
        minted = await client.post("/v1/api-keys", json={"role": "lender", "subject": "lena"})
        assert minted.status_code == 201, minted.text
        lena = {"Authorization": f"Bearer {minted.json()['key']}"}
        await fund(client, "lena", amount=100_000)

        listing = await open_listing(client, amount=300_000, max_rate_bps=2000, duration_s=2)
        lid = listing["id"]
        assert listing["status"] == "open"

        a = await bid_ok(client, lid, 150_000, 1200, "ann")
        b = await bid_ok(client, lid, 100_000, 1500, "ben")
        c = await bid_ok(client, lid, 100_000, 1800, "cat")
        assert c["allocated_amount"] == 50_000, "the marginal bid is partly in the set"
        d_reply = await place_bid(client, lid, 100_000, 1000, None, headers=lena)
        assert d_reply.status_code == 201, d_reply.text
        d = d_reply.json()
        assert d["lender_id"] == "lena" and d["allocated_amount"] == 100_000
        assert await balances(client, "lena") == (0, 100_000), "the bid froze all she had"
        assert await balances(client, "cat") == (FUNDS, 0), "outbid: cat's money is free again"
        assert a["seq"] < b["seq"] < c["seq"] < d["seq"]

        late = await place_bid(client, lid, 50_000, 1900, "dan")
        assert late.status_code == 409 and late.json()["code"] == "bid_not_competitive"
        assert late.json()["marginal_rate_bps"] == 1500
        too_dear = await place_bid(client, lid, 50_000, 2100, "dan")
        assert too_dear.status_code == 422 and too_dear.json()["code"] == "rate_above_max"

        book = (await get_json(client, f"/v1/listings/{lid}/bids"))["data"]
        assert [(x["id"], x["status"], x["allocated_amount"]) for x in book] == [
            (d["id"], "active", 100_000), (a["id"], "active", 150_000),
            (b["id"], "active", 50_000), (c["id"], "outbid", 0),
        ]

        closed = await until_closed(client, lid, seconds=10)
        assert closed["status"] == "funded" and closed["close_reason"] == "deadline"
        assert closed["closed_at"] == closed["closes_at"]
        assert closed["funded_amount"] == 300_000 and closed["loan_id"] is not None

        loan = await get_json(client, f"/v1/loans/{closed['loan_id']}")
        assert loan["listing_id"] == lid and loan["principal"] == 300_000
        assert loan["rate_bps"] == 1183, "amount-weighted mean of 10 %, 12 % and 15 %, half up"
        fills = [(f["bid_id"], f["lender_id"], f["amount"], f["rate_bps"]) for f in loan["fills"]]
        assert fills == [
            (a["id"], "ann", 150_000, 1200), (b["id"], "ben", 50_000, 1500),
            (d["id"], "lena", 100_000, 1000),
        ], "one fill per winning bid, in seq order, the marginal one partly"
        assert len(loan["schedule"]) == 12
        reserve = 4_500  # grade B puts 150 bps of the principal in the risk reserve
        assert (loan["service_fee"], loan["reserve_contribution"]) == (0, reserve)
        assert loan["disbursed"] == 300_000 - reserve
        assert await balances(client, "lena") == (0, 0), "settled to the borrower"
        assert await balances(client, "ben") == (FUNDS - 50_000, 0), "the unfilled half is freed"
        assert await balances(client, "borrower-1") == (300_000 - reserve, 0)
        pools = (await get_json(client, "/v1/platform/accounts"))["data"]
        assert [(p["id"], p["available"]) for p in pools] == [
            ("platform:fees", 0), ("platform:reserve", reserve),
        ]
        assert sum(row["principal"] for row in loan["schedule"]) == 300_000

        statuses = {x["id"]: x["status"] for x in
                    (await get_json(client, f"/v1/listings/{lid}/bids"))["data"]}
        assert statuses == {a["id"]: "won", b["id"]: "won", c["id"]: "outbid", d["id"]: "won"}
        mine = await client.get(f"/v1/bids/{d['id']}", headers=lena)
        assert mine.status_code == 200 and mine.json()["status"] == "won"
        theirs = await client.get(f"/v1/bids/{a['id']}", headers=lena)
        assert theirs.status_code == 403

        events = (await get_json(client, "/v1/events?limit=100"))["data"]
        assert [e["type"] for e in events] == [
            "listing.opened", "bid.placed", "bid.placed", "bid.placed", "bid.placed",
            "bid.outbid", "listing.funded",
        ]
        funded = events[-1]["data"]
        assert funded["loan"]["id"] == loan["id"] and len(funded["loan"]["fills"]) == 3

    assert await db.fetchval("SELECT count(*) FROM loans WHERE listing_id = $1::uuid", lid) == 1
    assert await db.fetchval("SELECT count(*) FROM fills WHERE loan_id = $1::uuid", loan["id"]) == 3
