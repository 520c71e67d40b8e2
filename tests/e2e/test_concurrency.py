"""Many bidders at once: the order the service stored is one the rules allow, and it decides."""

import asyncio
import random
import time

import asyncpg
import pytest

from matching import BidPlaced, Fill, ListingFailed, ListingFunded, MarketRules, PlaceBid
from tests.e2e.conftest import UNLIMITED, ServiceProcess
from tests.e2e.drive import (
    close_due,
    comparable,
    epoch,
    get_json,
    open_listing,
    reference_bids,
    replay_journal,
    until_closed,
)
from tests.e2e.load import Tally, Target, bidder, check_acknowledgement
from tests.unit.reference import ReferenceEngine

BIDDERS = 64
WINDOW_S = 5


@pytest.fixture
def service_env() -> dict[str, str]:
    return UNLIMITED  # this drives load through one key


def _admissible_at_its_seq(book: ReferenceEngine, bid: PlaceBid) -> None:
    """The bid was allowed on the book as it stood just before its seq (docs/rules.md)."""
    summary = book.summary(bid.listing_id)
    assert summary is not None
    terms = summary.terms
    assert bid.min_rate_bps <= terms.max_rate_bps, f"seq {bid.seq}: rate above the listing's max"
    assert bid.at < terms.closes_at, f"seq {bid.seq}: placed at or after closes_at"
    if summary.funded_amount == terms.amount:  # fully covered: only a cheaper bid gets in
        assert summary.marginal_rate_bps is not None
        assert bid.min_rate_bps < summary.marginal_rate_bps, (
            f"seq {bid.seq}: rate {bid.min_rate_bps} not below the marginal "
            f"{summary.marginal_rate_bps} of a covered book"
        )


def _by_seq(fill: Fill) -> int:
    return fill.seq


@pytest.mark.slow
async def test_concurrent_bidders_get_the_funding_sets_a_reference_computes_from_the_stored_order(
    service: ServiceProcess, db: "asyncpg.Connection[asyncpg.Record]", rng_seed: int
) -> None:
    rng = random.Random(rng_seed)
    tally = Tally()
    async with service.client() as client:
        listings = [
            await open_listing(client, amount=amount, max_rate_bps=2000, duration_s=WINDOW_S,
                               close_when_funded=False, **extra)
            for amount, extra in (
                (1_000_000, {}),
                (3_000_000, {"pricing": "uniform"}),
                (8_000_000, {"min_funding_bps": 7000}),
            )
        ]
        targets = [Target(x["id"], x["amount"], x["max_rate_bps"]) for x in listings]
        until = max(epoch(x["closes_at"]) for x in listings) - time.time() + time.monotonic()
        never = asyncio.Event()
        async with asyncio.timeout(WINDOW_S + 30):
            await asyncio.gather(*(
                bidder(client, random.Random(rng.random()), targets, tally, never,
                       until=until + 0.3, max_requests=5_000)
                for _ in range(BIDDERS)
            ))
        closed = [await until_closed(client, x["id"], seconds=10) for x in listings]

    assert tally.transport_errors == 0 and not tally.unexpected, tally.unexpected[:5]
    assert tally.statuses[201] >= 50, f"too little got in to mean anything: {tally.statuses}"
    assert tally.codes["bid_not_competitive"] > 0, "the books were driven to full coverage"
    for request, bid in tally.acknowledged:
        check_acknowledgement(request, bid)

    replay = await replay_journal(db, MarketRules(), check=_admissible_at_its_seq)
    acked = {bid["id"]: bid for _, bid in tally.acknowledged}
    assert acked.keys() <= {str(r["id"]) for r in replay.bid_rows}, "acknowledged means stored"
    placed = {
        e.bid_id: e for events in replay.outcomes.values() for e in events
        if isinstance(e, BidPlaced)
    }
    for bid_id, bid in acked.items():
        assert bid["seq"] == placed[bid_id].seq
        assert bid["allocated_amount"] == placed[bid_id].allocated_amount, (
            "the 201 reports the allocation the stored order gives at that seq"
        )

    due = close_due(replay, max(int(epoch(x["closes_at"]) * 1e6) for x in listings))
    resolutions = {
        e.listing_id: e for e in due if isinstance(e, ListingFunded | ListingFailed)
    }
    assert resolutions.keys() == {x["id"] for x in listings}
    async with service.client() as client:
        for listing in closed:
            lid = listing["id"]
            resolution = resolutions[lid]
            assert listing["close_reason"] == "deadline"
            assert listing["closed_at"] == listing["closes_at"]
            summary = replay.engine.summary(lid)
            assert summary is not None
            assert listing["status"] == summary.status
            assert listing["funded_amount"] == summary.funded_amount
            assert listing["bid_count"] == summary.bid_count
            bids = (await get_json(client, f"/v1/listings/{lid}/bids"))["data"]
            assert comparable(bids) == reference_bids(replay.engine, lid), "final statuses"
            if isinstance(resolution, ListingFailed):
                assert listing["loan_id"] is None
                continue
            assert isinstance(resolution, ListingFunded)
            loan = await get_json(client, f"/v1/loans/{listing['loan_id']}")
            assert (loan["principal"], loan["rate_bps"]) == (resolution.principal,
                                                            resolution.rate_bps)
            assert [(f["bid_id"], f["amount"], f["rate_bps"]) for f in loan["fills"]] == [
                (f.bid_id, f.amount, f.rate_bps) for f in sorted(resolution.fills, key=_by_seq)
            ]
            stored_fills = await db.fetch(
                "SELECT bid_id, amount, rate_bps FROM fills WHERE loan_id = $1::uuid ORDER BY seq",
                listing["loan_id"],
            )
            assert [(str(r["bid_id"]), r["amount"], r["rate_bps"]) for r in stored_fills] == [
                (f["bid_id"], f["amount"], f["rate_bps"]) for f in loan["fills"]
            ]
    print(f"concurrency: {tally.requests} requests, answers {dict(tally.statuses)}, "
          f"rejections {dict(tally.codes)}")
