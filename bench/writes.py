"""The write path without HTTP: bids straight into `Market.place_bid`, through the engine, the
journal and Postgres, to find what durability costs apart from the web stack.

    python bench/writes.py [--seconds 5] [--listings 1,100] [--concurrency 64] [--asgi]

One process: an embedded PostgreSQL in a temporary folder (or DATABASE_URL, a fresh database
in it), the service's app with its real lifespan (the writer fence, the journal writer, the
webhook dispatcher, the live hub), listings and lenders made through the API in-process, then
`concurrency` coroutines each awaiting one bid at a time for `seconds` per listing count.
With `--asgi` each bid goes in as uvicorn hands it to the app (raw ASGI messages, one lender
key per lender), so the figure adds the bid fast lane (or, with the lane off, FastAPI's route)
to the service: the server's CPU per bid less uvicorn's own. Prints, per listing count,
accepted bids/s, this process's CPU and Postgres' CPU per bid (µs), and the mean group-commit
batch; the last line is one JSON object.
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from burst import (  # noqa: E402  (bench/ is on the path)
    create_databases,
    database_url,
    drop_databases,
    postgres,
    tree_cpu_s,
)

from app.auth import Principal  # noqa: E402  (after the path fix, as a script)
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402

ADMIN = "la_admin_writes_" + uuid.uuid4().hex
LENDERS = 16


async def _prepare(client: httpx.AsyncClient, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    for n in range(LENDERS):
        response = await client.post(
            f"/v1/accounts/w-lender-{n}/deposits", headers=headers,
            json={"amount": 10**15, "reference": "bench"},
        )
        response.raise_for_status()
    ids = []
    for n in range(count):
        response = await client.post("/v1/listings", headers=headers, json={
            "borrower_id": f"w-borrower-{n}", "amount": 1_000_000_000, "term_months": 12,
            "max_rate_bps": 3_600, "grade": "B", "duration_s": 7 * 86_400,
        })
        response.raise_for_status()
        ids.append(str(response.json()["id"]))
    return ids


async def _keys(client: httpx.AsyncClient) -> list[str]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    keys = []
    for n in range(LENDERS):
        response = await client.post("/v1/api-keys", headers=headers,
                                     json={"role": "lender", "subject": f"w-lender-{n}"})
        response.raise_for_status()
        keys.append(str(response.json()["key"]))
    return keys


async def _drive_asgi(app: Any, keys: list[str], ids: list[str], concurrency: int,
                      seconds: float) -> int:
    """Bids as uvicorn delivers them: a scope, one `http.request` message, the answer sent."""
    stop = time.perf_counter() + seconds
    done = 0

    async def worker(c: int) -> None:
        nonlocal done
        auth = f"Bearer {keys[c % LENDERS]}".encode()
        n = 0
        while time.perf_counter() < stop:
            rate = 500 + (c * 7919 + n * 131) % 3000
            body = b'{"amount":5000,"min_rate_bps":%d}' % rate
            path = f"/v1/listings/{ids[(c + n) % len(ids)]}/bids"
            status = await asgi_bid(app, path, auth, body, 40000 + c)
            if status != 201:
                raise RuntimeError(f"bid answered {status}")
            n += 1
            done += 1

    await asyncio.gather(*(worker(c) for c in range(concurrency)))
    return done


async def asgi_bid(app: Any, path: str, auth: bytes, body: bytes, client_port: int) -> int:
    """One bid as raw ASGI messages, as uvicorn would pass it; the answer's status."""
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", client_port), "scheme": "http", "method": "POST",
        "root_path": "", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", auth),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
        "state": {},
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0] if statuses else 0


async def _drive(market: Any, ids: list[str], concurrency: int, seconds: float) -> int:
    lenders = [Principal("lender", f"w-lender-{n}") for n in range(LENDERS)]
    stop = time.perf_counter() + seconds
    done = 0

    async def worker(c: int) -> None:
        nonlocal done
        who = lenders[c % LENDERS]
        n = 0
        while time.perf_counter() < stop:
            rate = 500 + (c * 7919 + n * 131) % 3000
            await market.place_bid(who, ids[(c + n) % len(ids)], who.subject, 5_000, rate, None)
            n += 1
            done += 1

    await asyncio.gather(*(worker(c) for c in range(concurrency)))
    return done


async def _run(base: str, pg_pid: int | None, args: argparse.Namespace) -> list[dict[str, Any]]:
    name = f"la_writes_{os.getpid()}"
    if not await create_databases(base, [name]):
        raise SystemExit("cannot create the bench database")
    try:
        return await _measure(database_url(base, name), pg_pid, args)
    finally:
        await drop_databases(base, [name])


async def _measure(url: str, pg_pid: int | None, args: argparse.Namespace) -> list[dict[str, Any]]:
    settings = Settings(
        database_url=url, admin_key=SecretStr(ADMIN), rate_limit_per_s=0,
        rate_limit_unauthenticated_per_s=0, access_log=False,
        secrets_key=SecretStr("q5E1bGx0bS1rZXktZm9yLXRoZS10ZXN0LXN1aXRlISE="),
    )
    app = create_app(settings)
    out = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            market = app.state.services.market
            keys = await _keys(client) if args.asgi else []

            async def drive(ids: list[str], seconds: float) -> int:
                if args.asgi:
                    return await _drive_asgi(app, keys, ids, args.concurrency, seconds)
                return await _drive(market, ids, args.concurrency, seconds)

            for count in args.listings:
                ids = await _prepare(client, count)
                await drive(ids, 0.5)  # warm-up
                batches = app.state.metrics.journal_batch.collect()[0].samples
                before = {s.name: s.value for s in batches}
                cpu0, pg0, t0 = time.process_time(), tree_cpu_s(pg_pid) if pg_pid else 0.0, \
                    time.perf_counter()
                done = await drive(ids, args.seconds)
                wall = time.perf_counter() - t0
                cpu, pg = time.process_time() - cpu0, (tree_cpu_s(pg_pid) if pg_pid else 0) - pg0
                after = {s.name: s.value for s in app.state.metrics.journal_batch.collect()[0]
                         .samples}
                commits = after["loan_auction_journal_batch_entries_count"] - before[
                    "loan_auction_journal_batch_entries_count"]
                row = {
                    "listings": count, "bids_per_s": round(done / wall),
                    "process_us_per_bid": round(cpu / done * 1e6, 1),
                    "postgres_us_per_bid": round(pg / done * 1e6, 1) if pg_pid else None,
                    "mean_batch": round(done / commits, 1) if commits else None,
                }
                print(json.dumps(row), flush=True)
                out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--listings", default="1,100")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--asgi", action="store_true",
                        help="bids as raw ASGI requests (the fast lane), not service calls")
    args = parser.parse_args()
    args.listings = [int(c) for c in args.listings.split(",")]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="la-writes-") as tmp, postgres(Path(tmp)) as (
        base, pg_pid,
    ):
        import uvloop

        rows = uvloop.run(_run(base, pg_pid, args))
    print(json.dumps({"runs": rows, "loadavg_before": load, "loadavg_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
