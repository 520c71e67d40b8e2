"""The write path without HTTP: bids straight into `Market.place_bid`, through the engine, the
journal and Postgres, to find what durability costs apart from the web stack.

    python bench/writes.py [--seconds 5] [--listings 1,100] [--concurrency 64]

One process: an embedded PostgreSQL in a temporary folder (or DATABASE_URL, a fresh database
in it), the service's app with its real lifespan (the writer fence, the journal writer, the
webhook dispatcher, the live hub), listings and lenders made through the API in-process, then
`concurrency` coroutines each awaiting one bid at a time for `seconds` per listing count.
Prints, per listing count, accepted bids/s, this process's CPU and Postgres' CPU per bid (µs),
and the mean group-commit batch; the last line is one JSON object.
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
            for count in args.listings:
                ids = await _prepare(client, count)
                await _drive(market, ids, args.concurrency, 0.5)  # warm-up
                batches = app.state.metrics.journal_batch.collect()[0].samples
                before = {s.name: s.value for s in batches}
                cpu0, pg0, t0 = time.process_time(), tree_cpu_s(pg_pid) if pg_pid else 0.0, \
                    time.perf_counter()
                done = await _drive(market, ids, args.concurrency, args.seconds)
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
