"""The writes the crash drill kills the service in the middle of: one per kill, in turn.

Each is sent with an Idempotency-Key starting with `held_answers.HOLD_PREFIX`, so the service
(run as `tests.e2e.held_answers`) commits it and then holds the answer; the drill kills it once
the record is in Postgres, and the retry after the restart must be answered from that record
(`Idempotent-Replayed: true`).

A standing-order change is one of them: it re-budgets the drill's order that no listing
matches, which the order changer in `tests/e2e/load.py` leaves alone (so the held change, when
its retry is answered after the restart, is still that order's last).
"""

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import orjson

from tests.e2e.drive import Json, bid_ok, open_listing


@dataclass(frozen=True)
class Held:
    """A write ready to send: the request as `tests/e2e/load.py` tallies it (with its `kind`
    and `path`), its body, and the listings opened and bids placed to prepare it, as (request,
    201 body) (the drill checks them too)."""

    request: Json
    content: bytes
    opened: list[Json] = field(default_factory=list)
    bids: list[tuple[Json, Json]] = field(default_factory=list)


Prepare = Callable[[httpx.AsyncClient, random.Random], Awaitable[Held]]


@dataclass(frozen=True)
class HeldWrite:
    name: str
    prepare: Prepare


async def _bid(client: httpx.AsyncClient, rng: random.Random) -> Held:
    listing = await open_listing(client, amount=1_000_000, max_rate_bps=2000)
    request: Json = {"listing_id": listing["id"], "amount": rng.randrange(5_000, 50_001, 500),
                     "min_rate_bps": 1500, "lender_id": "lender-0",
                     "path": f"/v1/listings/{listing['id']}/bids"}
    body = {k: request[k] for k in ("amount", "min_rate_bps", "lender_id")}
    return Held(request, orjson.dumps(body), [listing])


def _move(kind: str, account: str) -> Prepare:
    async def prepare(client: httpx.AsyncClient, rng: random.Random) -> Held:
        amount = rng.randrange(1_000, 20_001, 1_000)
        request: Json = {"kind": kind, "account": account, "amount": amount,
                         "path": f"/v1/accounts/{account}/{kind}"}
        return Held(request, orjson.dumps({"amount": amount, "reference": "drill"}))

    return prepare


async def _open(client: httpx.AsyncClient, rng: random.Random) -> Held:
    body = {"borrower_id": "borrower-1", "amount": rng.choice([200_000, 500_000]),
            "term_months": 12, "max_rate_bps": 2000, "grade": "B", "duration_s": 3600}
    return Held({"kind": "open", "path": "/v1/listings"}, orjson.dumps(body))


def _close(kind: str) -> Prepare:
    """Accept (a listing with one bid, which is enough) or cancel a listing opened for it."""

    async def prepare(client: httpx.AsyncClient, rng: random.Random) -> Held:
        listing = await open_listing(client, amount=100_000, min_funding_bps=1)
        bid = {"listing_id": listing["id"], "amount": 10_000, "min_rate_bps": 1200,
               "lender_id": "lender-1"}
        placed = await bid_ok(client, listing["id"], 10_000, 1200, "lender-1")
        request: Json = {"kind": kind, "listing_id": listing["id"],
                         "path": f"/v1/listings/{listing['id']}/{kind}"}
        return Held(request, b"", [listing], [(bid, placed)])

    return prepare


#: The drill's order that matches none of its listings (grade A): only held writes change it.
HELD_ORDER_LENDER = "lender-2"


async def _order_change(client: httpx.AsyncClient, rng: random.Random) -> Held:
    found = await client.get("/v1/standing-orders", params={"lender_id": HELD_ORDER_LENDER})
    assert found.status_code == 200, found.text
    order = found.json()["data"][0]
    change = {"budget": order["amount_per_listing"] * rng.randrange(2, 1_000)}
    request: Json = {"kind": "order_change", "method": "PATCH", "order_id": order["id"],
                     "path": f"/v1/standing-orders/{order['id']}", **change}
    return Held(request, orjson.dumps(change))


HELD_WRITES: list[HeldWrite] = [
    HeldWrite("bid", _bid),
    HeldWrite("deposit", _move("deposits", "saver-0")),
    HeldWrite("withdrawal", _move("withdrawals", "lender-39")),
    HeldWrite("listing open", _open),
    HeldWrite("accept", _close("accept")),
    HeldWrite("cancel", _close("cancel")),
    HeldWrite("standing-order change", _order_change),
]
