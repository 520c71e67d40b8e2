"""Restart benchmark: how soon the service is ready on a database full of open bids, and what
the rebuilt books cost in memory.

    python bench/recovery.py [--bids 100000,1000000] [--listings 10000] [--lenders 1000]
                             [--runs 3]

In one run it starts PostgreSQL (embedded, in a temporary folder; or DATABASE_URL, where it
creates a database per case and drops it afterwards), and for each case makes a fresh database,
migrates it and loads, with COPY, what the service itself would have stored after that many
bids: `--listings` open listings (1,000,000,000 each, a 20-day window, close_when_funded false,
grade B's policy columns and a loan id, so no book fills and every bid is live), the bids spread
over them at random (5,000-20,000 at 1-3,600 bps, over `--lenders` lenders), each lender's
`accounts` row with `reserved` equal to its bids, one deposit and one reserve ledger entry per
movement (so the ledger's numbering continues where it would), no loans, no events (recovery
reads none). Then `VACUUM ANALYZE` and a checkpoint, as autovacuum would have done on a running
system; the tables are in the OS cache (a process restart, not a cold machine).

The cases: an empty database (migrated, nothing else), the listings without bids, then each
`--bids` count over the listings. For each case, `--runs` times (the cases take turns), it
starts the real service (`loan-auction serve` with DATABASE_URL, an admin key and a secrets
key) and measures:

- time to ready: from just before the process is spawned to the first 200 from `/readyz`
  (polled every 10 ms); the empty database's time is the fixed cost (imports, pools,
  migrations check, the fence);
- the rebuild itself, from the service's `journal replayed` log line (reading the journal,
  replaying it into the books, checking the reservations);
- peak RSS of the process (psutil, sampled every 5 ms from start to ready + 1 s) and RSS one
  second after ready;
- RSS per open bid: (RSS after ready - the same on the empty database) / open bids, and the
  same against the listings-only database (the bids alone, without the 10^4 books).

Progress goes to stdout; then a table; the last line is one JSON object. Every process started
is stopped on exit.
"""

import argparse
import asyncio
import csv
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from burst import (
    HOST,
    ROOT,
    Service,
    create_databases,
    database_url,
    drop_databases,
    free_port,
    log,
    postgres,
    serve_command,
    spawn,
    stop,
)
from cryptography.fernet import Fernet

sys.path.insert(0, str(ROOT))

SEED = 20261129
LISTING_AMOUNT = 1_000_000_000
MAX_RATE_BPS = 3_600
BID_MIN, BID_MAX = 5_000, 20_000
LENDER_AVAILABLE = 10**12  # money each lender still has free besides its bids
RESERVE_BPS_GRADE_B = 150  # the default policy's grade B row (no floor, no fee)
READY_TIMEOUT_S = 300.0
SETTLE_AFTER_READY_S = 1.0


@dataclass(frozen=True)
class Case:
    name: str
    listings: int
    bids: int


@dataclass
class Run:
    ready_s: float
    peak_rss: int
    rss_after_ready: int
    replayed: dict[str, Any]


@dataclass
class CaseResult:
    case: Case
    database: str
    load_s: float = 0.0
    runs: list[Run] = field(default_factory=list)


def uuid_str(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def csv_bytes(rows: list[tuple[Any, ...]]) -> io.BytesIO:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return io.BytesIO(text.getvalue().encode())


async def load(url: str, case: Case, lenders: int) -> None:
    """Migrate a fresh database and COPY in what the service stores for `case` (see above)."""
    import asyncpg

    from app import database

    rng = random.Random(SEED)
    now = datetime.now(UTC)
    opened = now - timedelta(hours=1)
    closes = now + timedelta(days=20)
    listing_ids = [uuid_str(rng) for _ in range(case.listings)]
    lender_ids = [f"bench-lender-{i:04d}" for i in range(lenders)]
    listings = [
        (lid, i + 1, f"bench-borrower-{i:05d}", LISTING_AMOUNT, 36, MAX_RATE_BPS, "B", closes,
         10_000, False, "pay_as_bid", opened, 0, 0, RESERVE_BPS_GRADE_B, 10_000, uuid_str(rng))
        for i, lid in enumerate(listing_ids)
    ]
    first_bid_seq = case.listings + 1
    reserved = dict.fromkeys(lender_ids, 0)
    bids: list[tuple[Any, ...]] = []
    for i in range(case.bids):
        lender = lender_ids[rng.randrange(lenders)]
        amount = rng.randint(BID_MIN, BID_MAX)
        reserved[lender] += amount
        bids.append((
            uuid_str(rng), listing_ids[rng.randrange(case.listings)], lender, amount,
            rng.randint(1, MAX_RATE_BPS), first_bid_seq + i,
            (opened + timedelta(microseconds=1000 * (i + 1))).isoformat(),
        ))
    conn = await asyncpg.connect(url)
    try:
        await database.migrate(conn)  # type: ignore[arg-type]  # a plain connection will do
        if not case.listings:
            return
        await conn.copy_to_table(
            "listings", source=csv_bytes(listings), format="csv", columns=[
                "id", "seq", "borrower_id", "amount", "term_months", "max_rate_bps", "grade",
                "closes_at", "min_funding_bps", "close_when_funded", "pricing", "opened_at",
                "floor_rate_bps", "service_fee_bps", "reserve_bps", "max_lender_share_bps",
                "loan_id",
            ],
        )
        if not case.bids:
            return
        await conn.copy_to_table(
            "bids", source=csv_bytes(bids), format="csv", columns=[
                "id", "listing_id", "lender_id", "amount", "min_rate_bps", "seq", "placed_at",
            ],
        )
        del bids
        funded = [lender for lender in lender_ids if reserved[lender]]
        await conn.copy_to_table(
            "accounts", source=csv_bytes([
                (lender, LENDER_AVAILABLE, reserved[lender], now) for lender in funded
            ]), format="csv", columns=["id", "available", "reserved", "updated_at"],
        )
        await conn.copy_to_table(
            "ledger_entries", source=csv_bytes([
                (n, "deposit", "external", lender, LENDER_AVAILABLE + reserved[lender], "deposit",
                 uuid_str(rng), opened)
                for n, lender in enumerate(funded, start=1)
            ]), format="csv", columns=[
                "id", "kind", "debit_account", "credit_account", "amount", "cause_type",
                "cause_id", "created_at",
            ],
        )
        await conn.execute(
            """INSERT INTO ledger_entries (id, kind, debit_account, credit_account, amount,
                   cause_type, cause_id, listing_id, bid_id, created_at)
               SELECT $1 + seq - $2, 'reserve', lender_id, lender_id, amount, 'bid', id,
                   listing_id, id, placed_at
               FROM bids""",
            len(funded), first_bid_seq - 1,
        )
    finally:
        if case.listings:
            await conn.execute("VACUUM ANALYZE")
            await conn.execute("CHECKPOINT")
        await conn.close()


class RssSampler(threading.Thread):
    """The process's peak RSS, sampled every 5 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.005)

    def rss(self) -> int:
        return self.process.memory_info().rss


def replayed_line(log_path: Path) -> dict[str, Any]:
    for line in log_path.read_text(errors="replace").splitlines():
        if '"journal replayed"' in line:
            entry: dict[str, Any] = orjson.loads(line)
            return {k: v for k, v in entry.items() if k in ("listings", "bids") or k[-2:] == "_s"}
    return {}


def start_once(name: str, url: str, env: dict[str, str], folder: Path) -> Run:
    port = free_port()
    argv = [*serve_command(), "--host", HOST, "--port", str(port)]
    started = time.perf_counter()
    service: Service = spawn(name, argv, {**env, "DATABASE_URL": url}, folder, port)
    sampler = RssSampler(service.process.pid)
    sampler.start()
    try:
        with httpx.Client(timeout=5.0) as client:
            while True:
                if service.process.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{service.log_tail()}")
                if time.perf_counter() - started > READY_TIMEOUT_S:
                    raise RuntimeError(f"{name} not ready:\n{service.log_tail()}")
                try:
                    if client.get(service.base + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        ready = time.perf_counter() - started
        time.sleep(SETTLE_AFTER_READY_S)
        rss = sampler.rss()
        sampler.done.set()
        sampler.join()
        return Run(ready, max(sampler.peak, rss), rss, replayed_line(service.log_path))
    finally:
        sampler.done.set()
        stop(service)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/recovery.py", description="Restart benchmark (see the module docstring)."
    )
    parser.add_argument("--bids", default="100000,1000000", help="comma-separated bid counts")
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--lenders", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3, help="service starts per case")
    return parser.parse_args(argv)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    empty, books = results[0], results[1]
    base_rss = statistics.median(r.rss_after_ready for r in empty.runs)
    books_rss = statistics.median(r.rss_after_ready for r in books.runs)
    out: dict[str, Any] = {}
    print(
        f"\n{'case':<16}{'load s':>8}{'ready s (median; runs)':>36}{'rebuild s':>11}"
        f"{'read/replay/check s':>22}{'peak MiB':>10}{'RSS MiB':>9}{'B/bid':>8}{'B/bid-bk':>9}"
    )
    for result in results:
        runs = result.runs
        ready = statistics.median(r.ready_s for r in runs)
        rss = statistics.median(r.rss_after_ready for r in runs)
        peak = max(r.peak_rss for r in runs)
        phases = [r.replayed for r in runs if r.replayed]
        parts = {
            k: statistics.median(p[k] for p in phases) for k in phases[0] if k.endswith("_s")
        } if phases else {}
        rebuild = sum(parts.values()) if parts else float("nan")
        bids = result.case.bids
        per_bid = (rss - base_rss) / bids if bids else float("nan")
        per_bid_books = (rss - books_rss) / bids if bids else float("nan")
        split = "/".join(f"{v:.2f}" for v in parts.values()) if parts else "-"
        print(
            f"{result.case.name:<16}{result.load_s:>8.1f}"
            f"{ready:>10.2f} ({' '.join(f'{r.ready_s:.2f}' for r in runs)})".ljust(44)
            + f"{rebuild:>11.2f}{split:>22}{mib(peak):>10}{mib(rss):>9}"
            f"{per_bid:>8.0f}{per_bid_books:>9.0f}"
        )
        out[result.case.name] = {
            "listings": result.case.listings, "bids": bids, "load_s": round(result.load_s, 1),
            "ready_s_median": round(ready, 3), "ready_s_runs": [round(r.ready_s, 3) for r in runs],
            "rebuild_s_median": round(rebuild, 3), "rebuild_phases_s_median": parts,
            "peak_rss_bytes": peak, "rss_after_ready_bytes": rss,
            "rss_bytes_per_open_bid": None if not bids else round(per_bid, 1),
            "rss_bytes_per_open_bid_excl_books": None if not bids else round(per_bid_books, 1),
        }
    print(
        "ready s: spawn to first /readyz 200.  rebuild s: the service's `journal replayed` line"
        " (read + replay + check).\nB/bid: (RSS one second after ready - RSS of the empty"
        " database's service) / open bids;\nB/bid-bk: the same against the listings-only"
        " database (the bids alone)."
    )
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    counts = [int(n) for n in args.bids.split(",") if n]
    cases = [Case("empty", 0, 0), Case("listings only", args.listings, 0)] + [
        Case(f"{n:.0e} bids".replace("+0", ""), args.listings, n) for n in counts
    ]
    load_before = os.getloadavg()
    log(
        f"loan-auction restart: cases {[c.name for c in cases]}, {args.lenders} lenders,"
        f" {args.runs} runs each, {os.cpu_count()} cores, load average"
        f" {' '.join(f'{x:.2f}' for x in load_before)}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="loan-auction-recovery-"))
    names = [f"la_recovery_{os.getpid()}_{i}" for i in range(len(cases))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOAN_AUCTION_")}
    env.pop("DATABASE_URL", None)
    env.update(
        LOAN_AUCTION_ADMIN_KEY="la_admin_bench_" + uuid.uuid4().hex,
        LOAN_AUCTION_SECRETS_KEY=Fernet.generate_key().decode(),
        LOAN_AUCTION_DATA_DIR=str(tmp / "service-data"),
        PYTHONUNBUFFERED="1",
    )
    try:
        results = measure(cases, args, env, tmp, names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarise(results)
    load_after = os.getloadavg()
    log(f"load average after {' '.join(f'{x:.2f}' for x in load_after)}")
    print(json.dumps({
        "cases": summary, "lenders": args.lenders, "runs": args.runs,
        "loadavg_before": load_before, "loadavg_after": load_after,
    }))


def measure(
    cases: list[Case], args: argparse.Namespace, env: dict[str, str], tmp: Path,
    names: list[str],
) -> list[CaseResult]:
    """Load every case's database, then start the service on each, the cases taking turns."""
    with postgres(tmp) as (base, _):
        if not asyncio.run(create_databases(base, names)):
            raise SystemExit("cannot create the benchmark's databases on this server")
        try:
            results = [CaseResult(case, name) for case, name in zip(cases, names, strict=True)]
            for result in results:
                started = time.perf_counter()
                asyncio.run(load(database_url(base, result.database), result.case, args.lenders))
                result.load_s = time.perf_counter() - started
                log(f"  loaded {result.case.name} in {result.load_s:.1f} s")
            for run in range(1, args.runs + 1):
                for result in results:
                    name = f"{result.database}-{run}"
                    outcome = start_once(name, database_url(base, result.database), env, tmp)
                    result.runs.append(outcome)
                    log(
                        f"  run {run} {result.case.name}: ready {outcome.ready_s:.2f} s, peak"
                        f" {mib(outcome.peak_rss)} MiB, after {mib(outcome.rss_after_ready)} MiB,"
                        f" {outcome.replayed}"
                    )
        finally:
            asyncio.run(drop_databases(base, names))
    return results


if __name__ == "__main__":
    main()
