"""Concurrent bidders, money movers, listers and standing-order changers over keep-alive HTTP:
every answer tallied, every success body kept.

Bidders bid as the funded `lender-N` and now and then as a `saver-N`, whose money is short and
moved in and out while they bid, so funds run out mid-burst (409 insufficient_funds). A lister
opens listings, bids on each once and accepts or cancels it, so those writes are in flight too.
An order changer pauses, resumes and re-budgets standing orders while listings open and close.

Each request carries its `kind` ("bid" when absent), which says where its answer is kept."""

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

Json = dict[str, Any]
ACCEPTED_ANSWERS = frozenset({200, 201, 409, 422})  # 200: an accept, a cancel or a PATCH
SAVERS = tuple(f"saver-{i}" for i in range(6))


@dataclass(frozen=True)
class Target:
    listing_id: str
    amount: int
    max_rate_bps: int


@dataclass
class Tally:
    """What the bidders saw. `acknowledged` holds each 201 body with the request that got it."""

    acknowledged: list[tuple[Json, Json]] = field(default_factory=list)
    #: each acknowledged deposit or withdrawal: (request, 201 body with the entry and account)
    moved: list[tuple[Json, Json]] = field(default_factory=list)
    #: each listing the lister opened (request, 201 body), and each accept or cancel (200 body)
    opened: list[tuple[Json, Json]] = field(default_factory=list)
    closed: list[tuple[Json, Json]] = field(default_factory=list)
    #: each acknowledged standing-order change, in the order the answers came: (request, body)
    order_changes: list[tuple[Json, Json]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    transport_errors: int = 0
    #: requests whose fate a crash hid: (Idempotency-Key, request, the exact body bytes sent)
    in_doubt: list[tuple[str, Json, bytes]] = field(default_factory=list)
    retried: int = 0
    replayed: int = 0
    #: Idempotency-Keys of the retries answered `Idempotent-Replayed: true`
    replayed_keys: set[str] = field(default_factory=set)
    early_transport_errors: list[str] = field(default_factory=list)
    requests: int = 0


async def bidder(
    client: httpx.AsyncClient, rng: random.Random, targets: list[Target], tally: Tally,
    killed: asyncio.Event, until: float, max_requests: int,
) -> None:
    """Fire bids, each with its own Idempotency-Key, until `until` (monotonic), `max_requests`,
    or the server goes away.

    A transport error after `killed` is set is the crash we caused: the request's fate is
    unknown, so it is kept in `in_doubt` for a retry. One before it is a failure of the service.
    """
    live = list(targets)
    for _ in range(max_requests):
        if killed.is_set() or time.monotonic() >= until or not live:
            return
        target = rng.choice(live)
        request: Json = {
            "listing_id": target.listing_id,
            "amount": rng.randrange(5_000, min(target.amount, 300_000) + 1, 500),
            # up to 10 % above the cap, so some answers are 422 rate_above_max
            "min_rate_bps": rng.randrange(100, target.max_rate_bps * 11 // 10 + 1),
            "lender_id": (
                rng.choice(SAVERS) if rng.random() < 0.1 else f"lender-{rng.randrange(40)}"
            ),
        }
        path = f"/v1/listings/{target.listing_id}/bids"
        content = orjson.dumps({k: v for k, v in request.items() if k != "listing_id"})
        code = await _send(client, rng, tally, killed, path, request, content)
        if code is None:
            return
        if code == "listing_not_open":
            live.remove(target)  # closed: bid on the others


async def mover(
    client: httpx.AsyncClient, rng: random.Random, tally: Tally, killed: asyncio.Event,
    until: float, max_requests: int,
) -> None:
    """Deposits to and withdrawals from the savers' accounts (some beyond what is available),
    each with its own Idempotency-Key, while the bidders spend the same money."""
    for _ in range(max_requests):
        if killed.is_set() or time.monotonic() >= until:
            return
        kind = rng.choice(("deposits", "deposits", "withdrawals"))
        request: Json = {
            "account": rng.choice(SAVERS), "kind": kind,
            "amount": rng.randrange(5_000, 100_000, 1_000),
        }
        path = f"/v1/accounts/{request['account']}/{kind}"
        content = orjson.dumps({"amount": request["amount"], "reference": "drill"})
        if await _send(client, rng, tally, killed, path, request, content) is None:
            return
        await asyncio.sleep(rng.uniform(0, 0.005))


async def lister(
    client: httpx.AsyncClient, rng: random.Random, tally: Tally, killed: asyncio.Event,
    until: float, max_requests: int,
) -> None:
    """Open a listing for `borrower-1`, bid on it once, then accept or cancel it; again."""
    for _ in range(max_requests):
        if killed.is_set() or time.monotonic() >= until:
            return
        body = {"borrower_id": "borrower-1", "amount": rng.choice([100_000, 400_000]),
                "term_months": 12, "max_rate_bps": 2000, "grade": "B", "duration_s": 3600,
                "min_funding_bps": 1}
        opened = await send(client, rng, tally, killed, {"kind": "open", "path": "/v1/listings"},
                            orjson.dumps(body))
        if opened is None:
            return
        if opened.status_code != 201:
            continue
        listing_id = opened.json()["id"]
        bid: Json = {"listing_id": listing_id, "amount": rng.randrange(5_000, 50_001, 500),
                     "min_rate_bps": rng.randrange(800, 2001, 25),
                     "lender_id": f"lender-{rng.randrange(40)}",
                     "path": f"/v1/listings/{listing_id}/bids"}
        content = orjson.dumps({k: bid[k] for k in ("amount", "min_rate_bps", "lender_id")})
        if await send(client, rng, tally, killed, bid, content) is None:
            return
        kind = rng.choice(("accept", "cancel"))
        close = {"kind": kind, "listing_id": listing_id,
                 "path": f"/v1/listings/{listing_id}/{kind}"}
        if await send(client, rng, tally, killed, close, b"") is None:
            return


async def order_changer(
    client: httpx.AsyncClient, rng: random.Random, orders: list[Json], tally: Tally,
    killed: asyncio.Event, until: float, max_requests: int,
) -> None:
    """PATCH the standing orders (pause, resume, a new budget) one request at a time, each with
    its own Idempotency-Key, so the last answer for an order is its state."""
    for _ in range(max_requests):
        if killed.is_set() or time.monotonic() >= until:
            return
        order = rng.choice(orders)
        change: Json = (
            {"budget": order["amount_per_listing"] * rng.choice((1, 3, 10, 1_000))}
            if rng.random() < 0.5 else {"active": rng.random() < 0.7}
        )
        request: Json = {"kind": "order_change", "method": "PATCH", "order_id": order["id"],
                         "path": f"/v1/standing-orders/{order['id']}", **change}
        if await send(client, rng, tally, killed, request, orjson.dumps(change)) is None:
            return
        await asyncio.sleep(rng.uniform(0, 0.02))


async def _send(
    client: httpx.AsyncClient, rng: random.Random, tally: Tally, killed: asyncio.Event,
    path: str, request: Json, content: bytes,
) -> str | None:
    """POST once with a fresh key; the answer's code ("" for a success), None if the server
    went away (the request is then in doubt)."""
    request["path"] = path
    response = await send(client, rng, tally, killed, request, content)
    if response is None:
        return None
    return _code(response)


async def send(
    client: httpx.AsyncClient, rng: random.Random, tally: Tally, killed: asyncio.Event,
    request: Json, content: bytes, key: str | None = None,
) -> httpx.Response | None:
    """POST `content` to `request["path"]` once, with `key` or a fresh Idempotency-Key, and
    tally the answer; None if the server went away (the request is then in doubt)."""
    key = key or f"{rng.getrandbits(64):016x}"
    tally.requests += 1
    try:
        response = await _post(client, request, key, content)
    except httpx.TransportError as error:
        tally.transport_errors += 1
        tally.in_doubt.append((key, request, content))
        if not killed.is_set():
            tally.early_transport_errors.append(repr(error))
        return None
    _count(tally, request, response)
    return response


async def retry_in_doubt(client: httpx.AsyncClient, tally: Tally) -> None:
    """Send every in-doubt request again, same key and bytes: a stored one is replayed."""
    in_doubt, tally.in_doubt = tally.in_doubt, []
    for key, request, content in in_doubt:
        response = await _post(client, request, key, content)
        tally.retried += 1
        if response.headers.get("Idempotent-Replayed") == "true":
            tally.replayed += 1
            tally.replayed_keys.add(key)
        _count(tally, request, response)


async def _post(client: httpx.AsyncClient, request: Json, key: str,
                content: bytes) -> httpx.Response:
    return await client.request(
        request.get("method", "POST"), request["path"], content=content,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )


def _count(tally: Tally, request: Json, response: httpx.Response) -> None:
    """Tally one answer: keep a success's body where its kind goes, count a rejection's code."""
    tally.statuses[response.status_code] += 1
    if response.status_code not in ACCEPTED_ANSWERS:
        tally.unexpected.append(f"{response.status_code} {response.text[:300]}")
        return
    code = _code(response)
    if code:
        tally.codes[code] += 1
        return
    kept = {"bid": tally.acknowledged, "deposits": tally.moved, "withdrawals": tally.moved,
            "open": tally.opened, "accept": tally.closed, "cancel": tally.closed,
            "order_change": tally.order_changes}
    kept[request.get("kind", "bid")].append((request, response.json()))


def _code(response: httpx.Response) -> str:
    """A rejection's problem `code`; "" for a success or an answer not expected at all."""
    if response.status_code < 400 or response.status_code not in ACCEPTED_ANSWERS:
        return ""
    code: str = response.json()["code"]
    return code


def check_acknowledgement(request: Json, bid: Json) -> None:
    """A 201 body describes the bid that was asked for."""
    assert bid["listing_id"] == request["listing_id"], (request, bid)
    assert bid["amount"] == request["amount"], (request, bid)
    assert bid["min_rate_bps"] == request["min_rate_bps"], (request, bid)
    assert bid["lender_id"] == request["lender_id"], (request, bid)
    assert bid["status"] in ("active", "won", "lost"), (request, bid)
