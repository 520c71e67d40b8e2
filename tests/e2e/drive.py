"""Helpers the end-to-end tests share: talk to the service, wait (bounded), replay the journal."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import httpx

from app.recovery import bid_command, open_command
from matching import AdvanceClock, Event, MarketRules, OpenListing, PlaceBid
from matching.rejections import Rejection
from tests.unit.reference import ReferenceEngine

Json = dict[str, Any]
T = TypeVar("T")


async def open_listing(client: httpx.AsyncClient, **fields: Any) -> Json:
    body: Json = {
        "borrower_id": "borrower-1", "amount": 300_000, "term_months": 12,
        "max_rate_bps": 2000, "grade": "B", "duration_s": 3600, **fields,
    }
    response = await client.post("/v1/listings", json=body)
    assert response.status_code == 201, response.text
    listing: Json = response.json()
    return listing


async def place_bid(
    client: httpx.AsyncClient, listing_id: str, amount: int, rate_bps: int,
    lender_id: str | None = "lender-1", headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: Json = {"amount": amount, "min_rate_bps": rate_bps}
    if lender_id is not None:
        body["lender_id"] = lender_id
    return await client.post(f"/v1/listings/{listing_id}/bids", json=body, headers=headers)


async def bid_ok(client: httpx.AsyncClient, listing_id: str, amount: int, rate_bps: int,
                 lender_id: str = "lender-1") -> Json:
    response = await place_bid(client, listing_id, amount, rate_bps, lender_id)
    assert response.status_code == 201, response.text
    bid: Json = response.json()
    return bid


async def get_json(client: httpx.AsyncClient, path: str) -> Json:
    response = await client.get(path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    body: Json = response.json()
    return body


def epoch(rfc3339: str) -> float:
    """Seconds since the epoch of an RFC 3339 time the API returned."""
    return datetime.fromisoformat(rfc3339).timestamp()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], seconds: float, what: str, every: float = 0.05
) -> T:
    """Poll `probe` until it returns something other than None; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"{what}: not reached within {seconds} s"
        await asyncio.sleep(every)


async def until_closed(client: httpx.AsyncClient, listing_id: str, seconds: float) -> Json:
    """The listing once it reads closed; if funded, its loan must read back at once.

    A read of a listing waits for its resolution's commit, so a funded listing whose loan is a
    404 is a bug to report (the service showed a resolution Postgres did not have), not a race
    to poll past.
    """

    async def closed() -> Json | None:
        listing = await get_json(client, f"/v1/listings/{listing_id}")
        if listing["status"] == "open":
            return None
        if listing["loan_id"] is not None:
            loan = await client.get(f"/v1/loans/{listing['loan_id']}")
            assert loan.status_code == 200, (
                f"listing {listing_id} reads {listing['status']} but its loan"
                f" {listing['loan_id']} answers {loan.status_code}: {loan.text}"
            )
        return listing

    return await eventually(closed, seconds, f"listing {listing_id} closed")


@dataclass(frozen=True)
class Snapshot:
    """What a client sees of one listing: the book in priority order and its depth."""

    listing: Json
    bids: list[Json]
    depth: list[Json]


async def snapshot(client: httpx.AsyncClient, listing_id: str) -> Snapshot:
    return Snapshot(
        await get_json(client, f"/v1/listings/{listing_id}"),
        (await get_json(client, f"/v1/listings/{listing_id}/bids"))["data"],
        (await get_json(client, f"/v1/listings/{listing_id}/book"))["data"],
    )


# --- the journal in Postgres, replayed through the naive reference engine --------------------


@dataclass
class Replay:
    """The reference engine after every stored command, and what each command returned."""

    engine: ReferenceEngine
    outcomes: dict[int, list[Event]]  # by seq
    listing_rows: list[Any]
    bid_rows: list[Any]


def replay_rules(rules: MarketRules) -> MarketRules:
    """Everything stored was admitted under the rules of its day; replay re-checks the book."""
    return MarketRules(
        min_listing_amount=1, max_listing_amount=2**62, min_window_us=-(2**62),
        max_window_us=2**62, min_bid_amount=1, legal_rate_cap_bps=2**31 - 1,
        max_term_months=rules.max_term_months,
    )


async def replay_journal(
    conn: "asyncpg.Connection[asyncpg.Record]", rules: MarketRules | None = None,
    check: Callable[[ReferenceEngine, PlaceBid], None] | None = None,
) -> Replay:
    """Feed every stored listing and bid, in seq order, to a fresh `ReferenceEngine`.

    Every stored command must be accepted: a stored bid the reference rejects is one the
    service should not have admitted (or one recovery would not replay). `check` runs before
    each bid, for assertions about the book at that point. Funds are not re-checked here (the
    replay has no deposits and no closes); `check_money` checks the ledger against Postgres.
    """
    listings = await conn.fetch("SELECT * FROM listings ORDER BY seq")
    bids = await conn.fetch("SELECT * FROM bids ORDER BY seq")
    engine = ReferenceEngine(rules or replay_rules(MarketRules()), check_funds=False)
    commands: list[OpenListing | PlaceBid] = [open_command(r) for r in listings]
    commands += [bid_command(r) for r in bids]
    commands.sort(key=lambda c: c.seq)
    outcomes: dict[int, list[Event]] = {}
    for command in commands:
        if check is not None and isinstance(command, PlaceBid):
            check(engine, command)
        outcome = engine.execute(command)
        assert not isinstance(outcome, Rejection), f"stored {command} does not replay: {outcome}"
        outcomes[command.seq] = outcome
    return Replay(engine, outcomes, list(listings), list(bids))


def close_due(replay: Replay, at: int) -> list[Event]:
    outcome = replay.engine.advance_clock(AdvanceClock(at))
    assert not isinstance(outcome, Rejection)
    return outcome


def reference_bids(engine: ReferenceEngine, listing_id: str) -> list[Json]:
    """The reference's book in the API's shape (fields that do not depend on the clock)."""
    views = engine.bids(listing_id)
    assert views is not None
    return [
        {"id": v.bid_id, "lender_id": v.lender_id, "seq": v.seq, "amount": v.amount,
         "min_rate_bps": v.rate_bps, "status": v.status, "allocated_amount": v.allocated_amount}
        for v in views
    ]


def reference_depth(engine: ReferenceEngine, listing_id: str) -> list[Json]:
    levels = engine.depth(listing_id)
    assert levels is not None
    return [
        {"rate_bps": d.rate_bps, "amount": d.amount, "bid_count": d.bid_count,
         "allocated_amount": d.allocated_amount}
        for d in levels
    ]


def comparable(bids: list[Json]) -> list[Json]:
    keys = ("id", "lender_id", "seq", "amount", "min_rate_bps", "status", "allocated_amount")
    return [{k: b[k] for k in keys} for b in bids]
