"""Concurrent bidders, money movers and standing-order changers over keep-alive HTTP: every
answer tallied, every 2xx body kept.

Bidders bid as the funded `lender-N` and now and then as a `saver-N`, whose money is short and
moved in and out while they bid, so funds run out mid-burst (409 insufficient_funds). The order
changer pauses, resumes and re-budgets standing orders while listings open and close."""

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

Json = dict[str, Any]
ACCEPTED_ANSWERS = frozenset({201, 409, 422})  # a PATCH answers 200 where a POST does 201
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
        path = f"/v1/standing-orders/{order['id']}"
        request: Json = {"order_id": order["id"], "method": "PATCH", **change}
        if await _send(client, rng, tally, killed, path, request, orjson.dumps(change)) is None:
            return
        await asyncio.sleep(rng.uniform(0, 0.02))


async def _send(
    client: httpx.AsyncClient, rng: random.Random, tally: Tally, killed: asyncio.Event,
    path: str, request: Json, content: bytes,
) -> str | None:
    """POST once with a fresh key; the answer's code ("" for a 201), None if the server went
    away (the request is then in doubt)."""
    key = f"{rng.getrandbits(64):016x}"
    request["path"] = path
    tally.requests += 1
    try:
        response = await _post(client, request, key, content)
    except httpx.TransportError as error:
        tally.transport_errors += 1
        tally.in_doubt.append((key, request, content))
        if not killed.is_set():
            tally.early_transport_errors.append(repr(error))
        return None
    return _count(tally, request, response) or ""


async def retry_in_doubt(client: httpx.AsyncClient, tally: Tally) -> None:
    """Send every in-doubt request again, same key and bytes: a stored one is replayed."""
    in_doubt, tally.in_doubt = tally.in_doubt, []
    for key, request, content in in_doubt:
        response = await _post(client, request, key, content)
        tally.retried += 1
        if response.headers.get("Idempotent-Replayed") == "true":
            tally.replayed += 1
        _count(tally, request, response)


async def _post(client: httpx.AsyncClient, request: Json, key: str,
                content: bytes) -> httpx.Response:
    return await client.request(
        request.get("method", "POST"), request["path"], content=content,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )


def _count(tally: Tally, request: Json, response: httpx.Response) -> str | None:
    """Tally one answer; returns the problem's `code` for a rejection."""
    tally.statuses[response.status_code] += 1
    patch = request.get("method") == "PATCH"
    status = 201 if patch and response.status_code == 200 else response.status_code
    if status not in ACCEPTED_ANSWERS:
        tally.unexpected.append(f"{response.status_code} {response.text[:300]}")
        return None
    if status == 201:
        kept = (
            tally.order_changes if "order_id" in request
            else tally.moved if "account" in request else tally.acknowledged
        )
        kept.append((request, response.json()))
        return None
    code: str = response.json()["code"]
    tally.codes[code] += 1
    return code


def check_acknowledgement(request: Json, bid: Json) -> None:
    """A 201 body describes the bid that was asked for."""
    assert bid["listing_id"] == request["listing_id"], (request, bid)
    assert bid["amount"] == request["amount"], (request, bid)
    assert bid["min_rate_bps"] == request["min_rate_bps"], (request, bid)
    assert bid["lender_id"] == request["lender_id"], (request, bid)
    assert bid["status"] in ("active", "won", "lost"), (request, bid)
