"""Postgres' CPU per stored bid for the journal's batch statement alone, without the service.

    python bench/journal_sql.py [--batch 32] [--batches 400] [--listings 1] [--rounds 2]
                                [--preload 0] [--random-ids] [--variant NAME=FILE.sql ...]

One embedded PostgreSQL (or DATABASE_URL's server); for each variant a fresh database, migrated,
then the variant's SQL (none for `schema`, the migrations as they are), one open listing or
more, `--preload` bids stored untimed (tables as a running service's have grown), and
`--batches` batches of `--batch` bids written with the journal's own statement
(`app.journal.statements.APPEND`: bids, `bid.placed` events, reserve ledger entries, the
lender's balance) on one connection, as the writer sends them. The first 20 batches warm up;
the rest are timed: the backend's CPU (from /proc, so Linux only) per bid, and the wall time
per batch. Variants run in turn, `--rounds` times, so a change in the machine's load reaches
each alike. Rows are built before timing; only Postgres' work is measured.

Bids and events get the service's ids (`app.ids.new_id`, time-ordered); `--random-ids` adds
the variant `random-ids`: the migrations as they are, with random (version 4) ids instead.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from burst import (  # noqa: E402  (bench/ is on the path)
    create_databases,
    database_url,
    drop_databases,
    postgres,
    proc_cpu_s,
)

from app.database import migrate  # noqa: E402  (after the path fix, as a script)
from app.ids import new_id  # noqa: E402
from app.journal import Entry  # noqa: E402
from app.journal.statements import APPEND, append_rows  # noqa: E402

WARMUP = 20
PRELOAD_BATCH = 500
LENDER = "bench-lender"


class Variant(NamedTuple):
    sql: str | None  # run after the migrations
    make_id: Callable[[], str]


def random_id() -> str:
    return str(uuid.uuid4())


def batch_args(listings: list[str], first: int, size: int, at: datetime,
               make_id: Callable[[], str]) -> list[str]:
    """The statement's JSON arguments for bids `first` to `first + size - 1`: the rows
    app/outcomes.py builds for a bid, through the journal's own `append_rows`."""
    entry, events = Entry(), []
    for n in range(first, first + size):
        bid, listing = make_id(), listings[n % len(listings)]
        rate = random.randint(1, 3_600)
        entry.bids.append((bid, listing, LENDER, 5_000, rate, n, at, None))
        data = {"id": bid, "listing_id": listing, "lender_id": LENDER, "amount": 5_000,
                "min_rate_bps": rate, "seq": n, "allocated_amount": 5_000,
                "placed_at": at.isoformat(), "source": "manual"}
        events.append((n, make_id(), "bid.placed", listing, at, data, "0" * 64))
        entry.ledger.append((n, "reserve", LENDER, f"{LENDER}:reserved", 5_000, "bid", bid,
                             listing, bid, None, at))
        entry.balances.append((LENDER, 10**15, 5_000 * n, at))
    return [orjson.dumps(rows).decode() for rows in append_rows(entry, events)]


async def open_listings(conn: "asyncpg.Connection[asyncpg.Record]", count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for seq, listing in enumerate(ids, 1):
        await conn.execute(
            """INSERT INTO listings (id, seq, borrower_id, amount, term_months, max_rate_bps,
                   grade, closes_at, min_funding_bps, close_when_funded, pricing, opened_at,
                   loan_id)
               VALUES ($1, $2, 'bench-borrower', 1000000000, 12, 3600, 'B',
                   now() + interval '1 day', 10000, false, 'pay_as_bid', now(), $3)""",
            listing, seq, uuid.uuid4(),
        )
    return ids


async def store(conn: "asyncpg.Connection[asyncpg.Record]", batch: list[str]) -> None:
    # 1: the fence's row at epoch 0 was found, so the batch was stored, not skipped
    assert await conn.fetchval(APPEND, 0, *batch) == 1


async def preload(conn: "asyncpg.Connection[asyncpg.Record]", listings: list[str], count: int,
                  make_id: Callable[[], str]) -> None:
    for first in range(1, count + 1, PRELOAD_BATCH):
        size = min(PRELOAD_BATCH, count + 1 - first)
        await store(conn, batch_args(listings, first, size, datetime.now(UTC), make_id))


async def measure(uri: str, variant: Variant, args: argparse.Namespace) -> dict[str, float]:
    conn = await asyncpg.connect(uri)
    try:
        await migrate(conn)  # type: ignore[arg-type]
        if variant.sql:
            await conn.execute(variant.sql)
        listings = await open_listings(conn, args.listings)
        await preload(conn, listings, args.preload, variant.make_id)
        await conn.execute("CHECKPOINT")  # the preload's dirty pages are not the batches' cost
        at = datetime.now(UTC)
        batches = [batch_args(listings, args.preload + 1 + k * args.batch, args.batch, at,
                              variant.make_id)
                   for k in range(args.batches)]
        pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
        for k, batch in enumerate(batches):
            if k == WARMUP:
                cpu, wall = proc_cpu_s(pid), time.perf_counter()
            await store(conn, batch)
        timed = args.batches - WARMUP
        return {
            "postgres_us_per_bid": (proc_cpu_s(pid) - cpu) / (timed * args.batch) * 1e6,
            "ms_per_batch": (time.perf_counter() - wall) / timed * 1e3,
        }
    finally:
        await conn.close()


async def run(base: str, variants: dict[str, Variant], args: argparse.Namespace) -> list[
    dict[str, Any]
]:
    rows: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for name, variant in variants.items():
            db = f"la_journal_sql_{os.getpid()}_{round_}_{len(rows)}"
            if not await create_databases(base, [db]):
                raise SystemExit("each variant needs a fresh database: cannot create one")
            try:
                figures = await measure(database_url(base, db), variant, args)
            finally:
                await drop_databases(base, [db])
            row = {"variant": name, "round": round_ + 1, **{
                k: round(v, 2) for k, v in figures.items()}}
            print(f"{name:>16}  round {round_ + 1}: {row['postgres_us_per_bid']:6.1f} µs of"
                  f" Postgres CPU per bid, {row['ms_per_batch']:.2f} ms per batch", flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--listings", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--preload", type=int, default=0,
                        help="bids stored before the timed batches")
    parser.add_argument("--random-ids", action="store_true",
                        help="also run the schema with random (version 4) ids")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FILE.sql",
                        help="SQL run after the migrations (repeatable)")
    args = parser.parse_args()
    if args.batches <= WARMUP:
        raise SystemExit(f"--batches must exceed the {WARMUP} warm-up batches")
    variants = {"schema": Variant(None, new_id)}
    if args.random_ids:
        variants["random-ids"] = Variant(None, random_id)
    for spec in args.variant:
        name, _, file = spec.partition("=")
        variants[name] = Variant(Path(file).read_text(), new_id)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="loan-auction-journal-sql-") as tmp, postgres(
        Path(tmp)
    ) as (base, _):
        rows = asyncio.run(run(base, variants, args))
    print(json.dumps({"runs": rows, "batch": args.batch, "listings": args.listings,
                      "preload": args.preload,
                      "loadavg_before": load_before, "loadavg_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
