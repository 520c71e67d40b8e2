"""A long outage: thousands of listings lapse while the service is down. The restart resolves
every one of them, once, in bounded transactions (not one giant one that could outgrow the
command timeout, fail, rebuild and retry the same thing forever)."""

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import UNLIMITED, ServiceProcess
from tests.e2e.drive import epoch
from tests.money import assert_conserved
from tests.waiting import eventually

LISTINGS = 2_000
MAX_ROWS = 2_000  # per journal transaction, small so that the bound shows
RESOLUTIONS = ["listing.funded", "listing.failed"]


@pytest.fixture
def service_env() -> dict[str, str]:
    return {**UNLIMITED, "LOAN_AUCTION_JOURNAL_MAX_BATCH_ROWS": str(MAX_ROWS)}


async def _open_with_a_bid(client: httpx.AsyncClient, n: int) -> str:
    listing = await client.post("/v1/listings", json={
        "borrower_id": f"borrower-{n}", "amount": 100_000, "term_months": 6,
        "max_rate_bps": 2000, "grade": "B", "duration_s": 20,
    })
    assert listing.status_code == 201, listing.text
    body = listing.json()
    amount = 100_000 if n % 2 else 60_000  # odd ones fund, even ones fail
    bid = await client.post(f"/v1/listings/{body['id']}/bids", json={
        "amount": amount, "min_rate_bps": 1000 + n % 500, "lender_id": f"lender-{n % 40}",
    })
    assert bid.status_code == 201, bid.text
    return str(body["closes_at"])


@pytest.mark.slow
async def test_listings_that_lapsed_during_a_long_outage_resolve_once_in_bounded_batches(
    service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]"
) -> None:
    gate = asyncio.Semaphore(32)

    async def one(n: int) -> str:
        async with gate:
            return await _open_with_a_bid(client, n)

    async with service.client() as client:
        closes = await asyncio.gather(*(one(n) for n in range(LISTINGS)))
    await service.kill()
    await asyncio.sleep(max(0.0, max(epoch(c) for c in closes) - time.time()) + 0.5)
    await service.start()

    async def all_resolved() -> bool:
        still_open = await db.fetchval("SELECT count(*) FROM listings WHERE status = 'open'")
        return bool(still_open == 0)

    await eventually(all_resolved, 120, "every lapsed listing resolved")
    per_listing = await db.fetch(
        "SELECT listing_id, count(*) AS n FROM events WHERE type = ANY($1::text[])"
        " GROUP BY listing_id", RESOLUTIONS,
    )
    assert len(per_listing) == LISTINGS and {r["n"] for r in per_listing} == {1}
    assert await db.fetchval("SELECT count(*) FROM loans") == LISTINGS // 2
    # Rows written by one transaction share its xmin; a resolution writes at least its event,
    # its listing's close and its bid's final state, so no transaction holds more than a third
    # of the row bound in resolutions (one entry beyond the bound is allowed: its last).
    per_transaction = await db.fetch(
        "SELECT xmin::text, count(*) AS n FROM events WHERE type = ANY($1::text[])"
        " GROUP BY xmin::text", RESOLUTIONS,
    )
    assert max(r["n"] for r in per_transaction) <= MAX_ROWS // 3 + 200
    assert len(per_transaction) >= 3
    await assert_conserved(db)
