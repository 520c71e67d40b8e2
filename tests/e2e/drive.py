"""Helpers the end-to-end tests share: talk to the service, wait (bounded), replay the journal."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import httpx

from app.clock import to_micros
from app.recovery import bid_command, open_command
from matching import (
    AcceptEarly,
    AdvanceClock,
    CancelListing,
    Deposit,
    Event,
    Fill,
    ListingFailed,
    ListingFunded,
    MarketRules,
    OpenListing,
    PlaceBid,
)
from matching.ledger import PLATFORM_ACCOUNTS
from matching.rejections import Rejection
from tests.unit.reference import ReferenceEngine
from tests.waiting import eventually

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


async def bid_commit_running(db: "asyncpg.Connection[asyncpg.Record]") -> bool:
    """Whether another session of this database is inside a COMMIT of bids (a batch of bids
    commits in its own statement)."""
    count = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND state = 'active'"
        " AND (query ILIKE 'COMMIT%' OR query ILIKE '%INSERT INTO bids%')"
    )
    return bool(count)


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
    #: money withdrawn per account (stored withdrawals; not replayed, see `replay_journal`)
    withdrawn: dict[str, int]
    #: what the borrowers' accepts and cancels returned
    closes: list[Event]


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
    """Feed what Postgres holds to a fresh `ReferenceEngine`: every deposit first, then every
    listing and bid in seq order, then the borrowers' accepts and cancels (no bid follows its
    listing's close, so they may come last). Deadlines are left to `close_due`.

    Every stored command must be accepted: a stored bid the reference rejects is one the
    service should not have admitted (or one recovery would not replay). `check` runs before
    each bid, for assertions about the book at that point. Funds are not re-checked (bids and
    withdrawals were admitted against balances of their moment, which a replay in another order
    does not have), so withdrawals are only totalled, for `reference_balances`.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        listings = await conn.fetch("SELECT * FROM listings ORDER BY seq")
        bids = await conn.fetch("SELECT * FROM bids ORDER BY seq")
        moves = await conn.fetch(
            "SELECT * FROM ledger_entries WHERE kind IN ('deposit', 'withdrawal') ORDER BY id"
        )
    engine = ReferenceEngine(rules or replay_rules(MarketRules()), check_funds=False)
    withdrawn: dict[str, int] = {}
    for move in moves:
        if move["kind"] == "withdrawal":
            account = move["debit_account"]
            withdrawn[account] = withdrawn.get(account, 0) + move["amount"]
            continue
        deposit = Deposit(move["credit_account"], str(move["id"]), move["amount"],
                          to_micros(move["created_at"]))
        assert engine.execute(deposit) == [], deposit
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
    closes: list[Event] = []
    for row in listings:
        closing = _BORROWER_CLOSES.get(row["close_reason"])
        if closing is not None:
            close = closing(str(row["id"]), 0, to_micros(row["closed_at"]))
            outcome = engine.execute(close)
            assert not isinstance(outcome, Rejection), f"stored {close} does not replay: {outcome}"
            closes += outcome
    return Replay(engine, outcomes, list(listings), list(bids), withdrawn, closes)


_BORROWER_CLOSES: dict[str, type[AcceptEarly] | type[CancelListing]] = {
    "accepted": AcceptEarly, "cancelled": CancelListing,
}


def reference_balances(replay: Replay) -> dict[str, tuple[int, int]]:
    """(available, reserved) of every account the replay moved money for, less withdrawals."""
    found = {}
    for account in replay.engine.accounts():
        balance = replay.engine.balance(account)
        assert balance is not None
        found[account] = (balance.available - replay.withdrawn.get(account, 0), balance.reserved)
    return found


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


# --- the service's state, read through the API, against the replay ---------------------------


def resolutions(replay: Replay, due: list[Event]) -> dict[str, ListingFunded | ListingFailed]:
    """Each funded or failed listing's resolution, as the replay decided it."""
    return {
        e.listing_id: e for events in [*replay.outcomes.values(), replay.closes, due]
        for e in events
        if isinstance(e, ListingFunded | ListingFailed)
    }


async def matches_reference(
    client: httpx.AsyncClient, db: "asyncpg.Connection[asyncpg.Record]",
    reference: ReferenceEngine, listing_id: str,
    resolved: dict[str, ListingFunded | ListingFailed],
) -> None:
    """The service's book (open) or its books and loan (closed) equal the reference's."""
    listing = await get_json(client, f"/v1/listings/{listing_id}")
    summary = reference.summary(listing_id)
    assert summary is not None
    assert listing["status"] == summary.status, (listing, summary)
    assert listing["bid_count"] == summary.bid_count, listing_id
    assert listing["funded_amount"] == summary.funded_amount, listing_id
    bids = (await get_json(client, f"/v1/listings/{listing_id}/bids"))["data"]
    assert comparable(bids) == reference_bids(reference, listing_id), f"book of {listing_id}"
    depth = (await get_json(client, f"/v1/listings/{listing_id}/book"))["data"]
    assert depth == reference_depth(reference, listing_id), f"depth of {listing_id}"
    if summary.status == "open":
        assert listing["marginal_rate_bps"] == summary.marginal_rate_bps
        return
    if summary.status == "cancelled":
        assert listing["loan_id"] is None
        return
    resolution = resolved[listing_id]
    assert listing["close_reason"] == resolution.reason
    if isinstance(resolution, ListingFunded):
        loan = await get_json(client, f"/v1/loans/{listing['loan_id']}")
        assert (loan["principal"], loan["rate_bps"]) == (resolution.principal, resolution.rate_bps)
        assert [(f["bid_id"], f["amount"], f["rate_bps"]) for f in loan["fills"]] == [
            (f.bid_id, f.amount, f.rate_bps) for f in sorted(resolution.fills, key=_by_seq)
        ], f"fills of {listing_id} (the API lists them in seq order)"
    else:
        assert listing["loan_id"] is None
        assert await db.fetchval(
            "SELECT count(*) FROM loans WHERE listing_id = $1::uuid", listing_id
        ) == 0


async def balances_match(client: httpx.AsyncClient, replay: Replay) -> int:
    """Every account's balance read through the API equals the replay's; returns how many."""
    expected = reference_balances(replay)
    platform = {a["id"]: (a["available"], a["reserved"])
                for a in (await get_json(client, "/v1/platform/accounts"))["data"]}
    for account, balance in expected.items():
        if account in PLATFORM_ACCOUNTS:
            assert platform[account] == balance, account
            continue
        got = await get_json(client, f"/v1/accounts/{account}")
        assert (got["available"], got["reserved"]) == balance, account
    return len(expected)


def _by_seq(fill: Fill) -> int:
    return fill.seq
