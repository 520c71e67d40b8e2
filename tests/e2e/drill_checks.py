"""What the crash drill checks after its kills: every answer against what Postgres holds, and
what the API shows against the reference fed the stored journal."""

import asyncio

import asyncpg
import httpx

from matching import BidPlaced
from tests.e2e.drive import Json, Replay, balances_match, get_json
from tests.e2e.load import Tally, check_acknowledgement
from tests.money import assert_conserved
from tests.unit.reference import ReferenceEngine

RESOLUTIONS = ("listing.funded", "listing.failed", "listing.cancelled")


async def bids_stored_as_answered(
    db: "asyncpg.Connection[asyncpg.Record]", tally: Tally, listing_ids: set[str],
    orders: list[Json],
) -> tuple[list[Json], int, int]:
    """Every acknowledged bid is stored as answered, and every other stored bid is an auto bid
    of one of the drill's orders on one of its listings (placed by the listing's opening).
    Returns the acknowledged bids, how many are stored, and how many of those are auto bids."""
    acked = [bid for _, bid in tally.acknowledged]
    for request, bid in tally.acknowledged:
        check_acknowledgement(request, bid)
    assert len({bid["id"] for bid in acked}) == len(acked), "a replay is the same bid, once"
    seqs = [bid["seq"] for bid in acked]
    assert len(set(seqs)) == len(seqs), "every acknowledged seq is unique"
    assert len(acked) >= 30, f"the drill barely bid: {tally.statuses}"
    stored = {str(r["id"]): r for r in await db.fetch("SELECT * FROM bids")}
    missing = [bid["id"] for bid in acked if bid["id"] not in stored]
    assert not missing, f"{len(missing)} acknowledged bids lost, e.g. {missing[:3]}"
    auto = {i: r for i, r in stored.items() if r["standing_order_id"] is not None}
    assert {str(r["listing_id"]) for r in auto.values()} <= listing_ids
    assert {str(r["standing_order_id"]) for r in auto.values()} <= {o["id"] for o in orders}
    unknown = stored.keys() - auto.keys() - {bid["id"] for bid in acked}
    assert not unknown, (
        f"{len(unknown)} stored bids no answer owned up to: a retry with the same"
        " Idempotency-Key must have replayed them"
    )
    for bid in acked:
        row = stored[bid["id"]]
        assert (row["seq"], row["amount"], row["min_rate_bps"], str(row["listing_id"])) == (
            bid["seq"], bid["amount"], bid["min_rate_bps"], bid["listing_id"]
        )
    return acked, len(stored), len(auto)


async def listings_stored_as_answered(
    db: "asyncpg.Connection[asyncpg.Record]", listings: list[Json], tally: Tally
) -> None:
    """Every stored listing was opened by the drill or answered 201; every acknowledged accept
    or cancel is stored as answered."""
    rows = {str(r["id"]): r for r in await db.fetch("SELECT * FROM listings")}
    opened = [body["id"] for body in (*listings, *(b for _, b in tally.opened))]
    assert len(set(opened)) == len(opened), "a replayed open is the same listing, once"
    assert set(rows) == set(opened), "a stored listing no answer owned up to, or one lost"
    for request, body in tally.closed:
        row = rows[request["listing_id"]]
        assert (row["status"], row["close_reason"]) == (body["status"], body["close_reason"])
        assert row["close_reason"] == ("accepted" if request["kind"] == "accept" else "cancelled")


def allocated_as_the_reference_placed_them(tally: Tally, replay: Replay) -> None:
    """Each 201's `allocated_amount` is the reference's allocation of that bid right after it
    was placed at its seq."""
    for _, bid in tally.acknowledged:
        placed = replay.outcomes[bid["seq"]][0]
        assert isinstance(placed, BidPlaced) and placed.bid_id == bid["id"], (bid, placed)
        assert bid["allocated_amount"] == placed.allocated_amount, (bid, placed)


async def money_matches(
    client: httpx.AsyncClient, db: "asyncpg.Connection[asyncpg.Record]", tally: Tally,
    replay: Replay,
) -> dict[str, int]:
    """Every acknowledged deposit and withdrawal is stored as answered and no other is; the
    money is conserved; the API shows the reference's balances; reserved money is the live
    bids."""
    stored = {
        r["id"]: r for r in await db.fetch(
            "SELECT * FROM ledger_entries WHERE kind IN ('deposit', 'withdrawal')"
            " AND reference = 'drill'"
        )
    }
    for request, body in tally.moved:
        row = stored.get(body["entry"]["id"])
        assert row is not None, f"acknowledged movement lost: {body}"
        assert (row["kind"] + "s", row["amount"]) == (request["kind"], request["amount"])
        assert request["account"] in (row["debit_account"], row["credit_account"])
    assert len(stored) == len({body["entry"]["id"] for _, body in tally.moved}), (
        "a stored movement no answer owned up to")
    balances = await assert_conserved(db)
    accounts = await balances_match(client, replay)
    live: dict[str, int] = {}
    reference: ReferenceEngine = replay.engine
    for listing_id in reference.listing_ids():
        for bid in reference.bids(listing_id) or []:
            if bid.status == "active":
                live[bid.lender_id] = live.get(bid.lender_id, 0) + bid.amount
    assert {a: r for a, (_, r) in balances.items() if r} == live, "reserved is not the live bids"
    return {"movements_acknowledged": len(tally.moved), "movements_stored": len(stored),
            "insufficient_funds": tally.codes["insufficient_funds"],
            "balances_compared": accounts}


async def read_back(client: httpx.AsyncClient, acked: list[Json]) -> int:
    """GET /v1/bids/{id} for every acknowledged bid (32 at a time); returns how many matched."""
    gate = asyncio.Semaphore(32)

    async def one(bid: Json) -> None:
        async with gate:
            got = await get_json(client, f"/v1/bids/{bid['id']}")
        assert (got["seq"], got["amount"], got["min_rate_bps"]) == (
            bid["seq"], bid["amount"], bid["min_rate_bps"]
        ), (bid, got)

    async with asyncio.timeout(60):
        await asyncio.gather(*(one(bid) for bid in acked))
    return len(acked)


async def resolved_at_most_once(
    db: "asyncpg.Connection[asyncpg.Record]", listing_ids: list[str]
) -> None:
    rows = await db.fetch(
        "SELECT listing_id, count(*) AS n FROM events WHERE type = ANY($1::text[])"
        " GROUP BY listing_id", list(RESOLUTIONS),
    )
    events = {str(r["listing_id"]): r["n"] for r in rows}
    assert all(n == 1 for n in events.values()), f"a listing resolved twice: {events}"
    for state in await listing_states(db):
        closed = state["status"] != "open"
        assert events.get(str(state["id"]), 0) == int(closed), state
    loans = await db.fetch("SELECT listing_id, count(*) AS n FROM loans GROUP BY listing_id")
    assert all(r["n"] == 1 for r in loans)
    funded = {str(s["id"]) for s in await listing_states(db) if s["status"] == "funded"}
    assert {str(r["listing_id"]) for r in loans} == funded
    assert set(events) <= set(listing_ids)


async def listing_states(db: "asyncpg.Connection[asyncpg.Record]") -> list[Json]:
    rows = await db.fetch("SELECT id, status FROM listings ORDER BY seq")
    return [{"id": str(r["id"]), "status": r["status"]} for r in rows]


async def orders_match(
    client: httpx.AsyncClient, db: "asyncpg.Connection[asyncpg.Record]", tally: Tally,
    orders: list[Json], replay: Replay,
) -> dict[str, int]:
    """Each order's last acknowledged change holds; its reserved money is its live auto bids
    (the books as the reference rebuilds them) and its settled money its auto bids' fills; the
    API shows what Postgres holds."""
    last: dict[str, Json] = {}
    for request, body in tally.order_changes:
        assert body["id"] == request["order_id"]
        assert all(body[k] == request[k] for k in ("budget", "active") if k in request), body
        last[body["id"]] = body
    rows_by_id = {str(r["id"]): r for r in replay.bid_rows}
    live: dict[str, int] = {}
    for listing_id in replay.engine.listing_ids():
        for bid in replay.engine.bids(listing_id) or []:
            order_id = rows_by_id[bid.bid_id]["standing_order_id"]
            if bid.status == "active" and order_id is not None:
                live[str(order_id)] = live.get(str(order_id), 0) + bid.amount
    fills = await db.fetch(
        "SELECT b.standing_order_id, sum(f.amount)::bigint AS settled FROM fills f"
        " JOIN bids b ON b.id = f.bid_id WHERE b.standing_order_id IS NOT NULL"
        " GROUP BY b.standing_order_id"
    )
    settled = {str(r["standing_order_id"]): r["settled"] for r in fills}
    rows = {str(r["id"]): r for r in await db.fetch("SELECT * FROM standing_orders")}
    for order in orders:
        row = rows[order["id"]]
        shown = await get_json(client, f"/v1/standing-orders/{order['id']}")
        want = last.get(order["id"], order)
        assert (row["budget"], row["active"]) == (want["budget"], want["active"]), order["id"]
        assert (row["reserved"], row["settled"]) == (
            live.get(order["id"], 0), settled.get(order["id"], 0)), order["id"]
        assert (shown["budget"], shown["active"], shown["reserved"], shown["settled"],
                shown["queue_ticket"]) == (row["budget"], row["active"], row["reserved"],
                                           row["settled"], row["ticket"]), order["id"]
    return {"order_changes_acknowledged": len(tally.order_changes),
            "orders_with_live_auto_bids": len(live)}
