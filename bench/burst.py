"""Bid-burst benchmark: how many durable bids a second one service process acknowledges.

Run by hand from the repo root (or as `loan-auction bench ...`):

    python bench/burst.py [--connections 64] [--seconds 10] [--listings 1,100] [--chain-off]
                          [--warm-wal MIB]

In one run it:

1. starts an embedded PostgreSQL in a temporary folder (or uses DATABASE_URL; either way each
   service gets a fresh database of its own, dropped afterwards when it can be; the embedded
   one first writes `--warm-wal` MiB of WAL, 1200 unless told, and checkpoints, so its WAL
   segments are recycled as on a server that has been running: `warm_wal`; `--warm-wal 0`
   measures a new cluster), then, as real
   uvicorn processes on free 127.0.0.1 ports: the service (`loan-auction serve`), the same
   service with its journal writer storing nothing (a non-durable baseline, launched through
   bench/variant_serve.py; no service setting does this), with --chain-off also the durable
   service without the audit chain's hashing, the trivial FastAPI app and a canned-response raw
   asyncio server (bench/trivial_app.py); waits until all are ready;
2. measures the load generator's own ceiling against the raw server, then the trivial app;
3. for each listing count: opens that many listings on each service (amount 1,000,000,000, a
   long window, close_when_funded false: they never close and the book never fills, so every
   bid is accepted unless something is wrong) and drives N concurrent keep-alive connections
   posting bids (5,000 at rates spread over 5-35 %) for a warm-up second plus `--seconds`,
   bounded by a count so no book can fill; first against the durable service, then the
   chain-off one (with --chain-off), then the journal-off one;
4. reads the durable service's group-commit histogram (`loan_auction_journal_batch_entries` on
   /metrics) before and after each phase: mean entries per commit and the bucket distribution;
5. with `--subscribers N`, for each listing count, two more phases on the durable service, on
   fresh listings: N live streams (`GET /v1/listings/{id}/stream`, a lender key that does not
   bid, so they read the masked rendering) attached to the hot listing (the first; every bid
   goes to it at one listing) by bench/streams.py in a process of its own, then the same load
   without them again; the ratio compares the streams phase with the mean of the two durable
   phases without streams, and the events delivered per second are counted by the subscribers.

The load generator is a minimal asyncio HTTP/1.1 client (pre-built request bytes, one request
in flight per keep-alive connection, uvloop when installed), in this process. Each phase shows
the CPU used by the client, the server process, Postgres and the whole machine, so a client or
machine bottleneck is visible rather than guessed. Rate limiting, on by default, is switched off
in the services (LOAN_AUCTION_RATE_LIMIT_PER_S=0 and ..._UNAUTHENTICATED_PER_S=0), and so is the
access log (LOAN_AUCTION_ACCESS_LOG=false); bids carry no Idempotency-Key unless
--idempotency-keys.

Progress goes to stdout, one line per phase step and per second; then a summary table; the
last line is one JSON object. Every subprocess is stopped on exit.
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
LISTING_AMOUNT = 1_000_000_000
LENDER_FUNDS = 10**15  # far more than any burst can reserve
MAX_RATE_BPS = 3_600
BOOK_FILL_LIMIT = 0.8  # stop a phase before its bids could cover this share of the books
LENDERS = 16
BASELINE_CAP = 5_000_000  # request cap per phase for the baselines (no book to fill)
CLK_TCK = os.sysconf("SC_CLK_TCK")
DROPPED_METRIC = "loan_auction_live_streams_dropped"


def log(message: str) -> None:
    print(message, flush=True)


# --- processes and CPU accounting -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_s(root: int) -> float:
    """CPU seconds of a process and its direct children (postmaster and its backends)."""
    total = proc_cpu_s(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == root:
            total += (int(stat[11]) + int(stat[12])) / CLK_TCK
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies from /proc/stat, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return float(sum(values) - idle), float(sum(values))


@dataclass
class CpuSample:
    wall: float
    client: float
    server: float
    pg: float | None
    busy: float
    total: float


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    pg_pid: int | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu(self) -> CpuSample:
        busy, total = machine_cpu()
        return CpuSample(
            time.perf_counter(), time.process_time(), proc_cpu_s(self.process.pid),
            None if self.pg_pid is None else tree_cpu_s(self.pg_pid), busy, total,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path, port: int) -> Service:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Service(name, port, process, log_path)


def stop(service: Service) -> None:
    """SIGTERM the process group (graceful: the journal flushes), SIGKILL after 15 s."""
    process = service.process
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def serve_command(name: str = "durable") -> list[str]:
    """`loan-auction serve`, or for a baseline the same through bench/variant_serve.py."""
    if name != "durable":
        variant = str(ROOT / "bench" / "variant_serve.py")
        return [sys.executable, variant, name.replace("_", "-"), "serve"]
    script = Path(sys.executable).parent / "loan-auction"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "app.cli", "serve"]


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + name))


async def create_databases(base: str, names: list[str]) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(base)
    except Exception as error:  # noqa: BLE001 - reported, then we fall back
        log(f"  cannot connect to create bench databases ({error!r})")
        return False
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        return True
    except Exception as error:  # noqa: BLE001
        log(f"  cannot create bench databases ({error!r}); sharing the given database")
        return False
    finally:
        await conn.close()


async def drop_databases(base: str, names: list[str]) -> None:
    import asyncpg

    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(base)
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


#: WAL the embedded Postgres writes before the first phase unless told otherwise: past what a
#: run writes (a wrk.py run ~940 MiB), so the phases write into recycled WAL files as on a
#: server that has been running, not into new ones as on a cluster just made.
DEFAULT_WARM_WAL_MIB = 1200


async def warm_wal(base: str, mib: int) -> None:
    """Write ~`mib` MiB of WAL and checkpoint, so that its segments are recycled from then on,
    as on a Postgres that has been running a while. A new cluster has none: every 16 MiB of WAL
    a commit waits while Postgres creates and zero-fills the next segment (27-55 ms on this
    machine under load; BENCHMARKS.md, issue 14 tenth pass)."""
    import asyncpg

    conn = await asyncpg.connect(base)
    try:
        await conn.execute("CREATE TABLE bench_wal_warmup (filler text)")
        await conn.execute(  # ~1 KiB of WAL a row (1,068 bytes, measured with 200 MiB asked)
            "INSERT INTO bench_wal_warmup SELECT repeat('x', 1000) FROM generate_series(1, $1)",
            mib * 1000,
        )
        await conn.execute("DROP TABLE bench_wal_warmup")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


# --- the load generator ---------------------------------------------------------------------


@dataclass
class LoadResult:
    completed: int = 0
    window_s: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    capped: bool = False
    all_ok: int = 0  # 201s including the warm-up

    @property
    def ok(self) -> int:
        return self.statuses.get("201", 0)

    @property
    def rejected(self) -> int:
        return self.completed - self.ok

    @property
    def ok_per_s(self) -> float:
        return self.ok / self.window_s if self.window_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Load:
    """N keep-alive connections, each sending its pre-built requests one at a time."""

    def __init__(
        self, label: str, port: int, requests: list[list[bytes]], warmup: float, seconds: float,
        max_requests: int,
    ) -> None:
        self.label = label
        self.port = port
        self.requests = requests
        self.warmup = warmup
        self.seconds = seconds
        self.max_requests = max_requests
        self.issued = 0
        self.stopped = False
        self.window_start = 0.0
        self.last_done = 0.0
        self.result = LoadResult()
        self._second: list[tuple[float, bool]] = []  # (latency, ok) since the last tick
        self._second_other: Counter[str] = Counter()

    async def run(self) -> LoadResult:
        started = time.perf_counter()
        self.window_start = started + self.warmup
        deadline = self.window_start + self.seconds
        workers = [asyncio.create_task(self._worker(i)) for i in range(len(self.requests))]
        ticker = asyncio.create_task(self._tick(started))
        try:
            while time.perf_counter() < deadline and not self.stopped:
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.perf_counter())))
            self.stopped = True
            done, pending = await asyncio.wait(workers, timeout=10)
            for task in pending:
                task.cancel()
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
        finally:
            ticker.cancel()
            for task in workers:
                task.cancel()
        window_end = min(deadline, self.last_done) if self.result.capped else deadline
        self.result.window_s = max(0.0, window_end - self.window_start)
        return self.result

    async def _tick(self, started: float) -> None:
        step = 0
        while True:
            step += 1
            await asyncio.sleep(max(0.0, started + step - time.perf_counter()))
            sample, self._second = self._second, []
            other, self._second_other = self._second_other, Counter()
            lat = sorted(s[0] for s in sample)
            ok = sum(1 for s in sample if s[1])
            phase = "warmup" if step <= self.warmup + 1e-9 else f"t={step - self.warmup:4.0f}s"
            p50 = f"{lat[len(lat) // 2] * 1000:6.1f}" if lat else "     -"
            p99 = f"{lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000:6.1f}" if lat else "     -"
            extra = ("  other: " + ", ".join(f"{k}×{v}" for k, v in other.items())) if other else ""
            log(f"  [{self.label}] {phase:>7} 201/s {ok:7d}  p50 {p50} ms  p99 {p99} ms{extra}")

    async def _worker(self, index: int) -> None:
        requests = self.requests[index]
        count = len(requests)
        result = self.result
        perf = time.perf_counter
        i = index
        while not self.stopped:
            try:
                reader, writer = await asyncio.open_connection(HOST, self.port)
            except OSError as error:
                self._record(0.0, perf(), "conn_error", repr(error))
                await asyncio.sleep(0.1)
                continue
            try:
                while not self.stopped:
                    if self.issued >= self.max_requests:
                        self.stopped = True
                        result.capped = True
                        break
                    self.issued += 1
                    data = requests[i % count]
                    i += 1
                    t0 = perf()
                    writer.write(data)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = head[9:12].decode()
                    lower = head.lower()
                    at = lower.find(b"content-length:")
                    if at < 0:
                        raise ConnectionError("response without content-length")
                    length = int(lower[at + 15: lower.find(b"\r\n", at)])
                    body = await reader.readexactly(length) if length else b""
                    t1 = perf()
                    self._record(t1 - t0, t1, status,
                                 None if status == "201" else _problem_code(body))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ConnectionError, ValueError) as error:
                if not self.stopped:
                    self._record(0.0, perf(), "conn_error", type(error).__name__)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    def _record(self, latency: float, done_at: float, status: str, code: str | None) -> None:
        ok = status == "201"
        if ok:
            self.result.all_ok += 1
        self._second.append((latency, ok))
        if not ok:
            self._second_other[f"{status} {code}" if code else status] += 1
        self.last_done = done_at
        if done_at < self.window_start:
            return
        result = self.result
        result.completed += 1
        result.statuses[status] += 1
        if not ok:
            result.codes[f"{status} {code}" if code else status] += 1
        if latency > 0:
            result.latencies.append(latency)


def _problem_code(body: bytes) -> str | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return str(code) if code is not None else None


def bid_requests(
    port: int, listing_ids: list[str], keys: list[str], connections: int, bid_amount: int,
    idempotency_keys: bool, per_connection: int = 512,
) -> list[list[bytes]]:
    """Connection c sends, in a cycle, bids spread over every listing and over rates 5-35 %."""
    out: list[list[bytes]] = []
    for c in range(connections):
        key = keys[c % len(keys)]
        requests = []
        for n in range(per_connection):
            listing = listing_ids[(c + n) % len(listing_ids)]
            rate = 500 + (c * 7919 + n * 131) % 3000
            body = orjson.dumps({"amount": bid_amount, "min_rate_bps": rate})
            idem = f"Idempotency-Key: {uuid.uuid4()}\r\n" if idempotency_keys else ""
            requests.append(
                f"POST /v1/listings/{listing}/bids HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n{idem}"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
        out.append(requests)
    return out


# --- the service: readiness, keys, listings, metrics ----------------------------------------


async def wait_ready(
    client: httpx.AsyncClient, service: Service, path: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if path == "POST":
                response = await client.post(
                    f"{service.base}/v1/listings/x/bids", content=b'{"ping": 1}'
                )
                if response.status_code == 201:
                    return
            elif (await client.get(service.base + path)).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{service.name} not ready after {timeout:.0f} s:\n{service.log_tail()}")


async def mint_lender_keys(client: httpx.AsyncClient, service: Service, admin: str) -> list[str]:
    """A key per lender, and money in custody behind it (bids reserve funds; the trivial
    endpoint has no accounts and ignores the deposit)."""
    keys = []
    for n in range(LENDERS):
        response = await client.post(
            f"{service.base}/v1/api-keys",
            headers={"Authorization": f"Bearer {admin}"},
            json={"role": "lender", "subject": f"bench-lender-{n}"},
        )
        response.raise_for_status()
        keys.append(str(response.json()["key"]))
        await client.post(
            f"{service.base}/v1/accounts/bench-lender-{n}/deposits",
            headers={"Authorization": f"Bearer {admin}"},
            json={"amount": LENDER_FUNDS, "reference": "bench"},
        )
    return keys


async def mint_key(client: httpx.AsyncClient, service: Service, admin: str, subject: str) -> str:
    response = await client.post(
        f"{service.base}/v1/api-keys",
        headers={"Authorization": f"Bearer {admin}"},
        json={"role": "lender", "subject": subject},
    )
    response.raise_for_status()
    return str(response.json()["key"])


async def metric_value(client: httpx.AsyncClient, service: Service, name: str) -> float:
    """One unlabelled sample from /metrics (a counter's `_total`), 0 if absent."""
    for line in (await client.get(service.base + "/metrics")).text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample in (name, name + "_total"):
            return float(value)
    return 0.0


async def open_listings(
    client: httpx.AsyncClient, service: Service, admin: str, count: int, window_s: int,
    amount: int = LISTING_AMOUNT,
) -> list[str]:
    async def one(n: int) -> str:
        response = await client.post(
            f"{service.base}/v1/listings",
            headers={"Authorization": f"Bearer {admin}"},
            json={
                "borrower_id": f"bench-borrower-{n}",
                "amount": amount,
                "term_months": 12,
                "max_rate_bps": MAX_RATE_BPS,
                "grade": "B",
                "duration_s": window_s,
                "close_when_funded": False,
                "min_funding_bps": 10_000,
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"opening a listing: {response.status_code} {response.text}")
        return str(response.json()["id"])

    ids: list[str] = []
    for start in range(0, count, 32):
        ids += await asyncio.gather(*(one(n) for n in range(start, min(count, start + 32))))
    return ids


Histogram = dict[str, float]  # "le" bucket -> cumulative count, plus "_sum" and "_count"


async def batch_histogram(client: httpx.AsyncClient, service: Service) -> dict[str, Histogram]:
    """The journal batch-size and commit-latency histograms from /metrics."""
    text = (await client.get(service.base + "/metrics")).text
    found: dict[str, Histogram] = {"batch": {}, "commit": {}}
    names = {
        "loan_auction_journal_batch_entries": "batch",
        "loan_auction_journal_commit_seconds": "commit",
    }
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_part, _, value = line.rpartition(" ")
        for metric, key in names.items():
            if name_part == f"{metric}_sum":
                found[key]["_sum"] = float(value)
            elif name_part == f"{metric}_count":
                found[key]["_count"] = float(value)
            elif name_part.startswith(f'{metric}_bucket{{le="'):
                found[key][name_part.split('"')[1]] = float(value)
    return found


def histogram_delta(before: Histogram, after: Histogram) -> Histogram:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def bucket_ranges(delta: Histogram) -> list[tuple[str, int]]:
    """Non-cumulative counts per bucket, labelled '(lo, hi]'."""
    bounds = sorted(
        ((float(k), k) for k in delta if not k.startswith("_") and k != "+Inf"),
        key=lambda b: b[0],
    ) + [(float("inf"), "+Inf")]
    out, previous, lo = [], 0.0, "0"
    for value, key in bounds:
        cumulative = delta.get(key, 0.0)
        count = round(cumulative - previous)
        hi = "inf" if value == float("inf") else f"{value:g}"
        if count:
            out.append((f"({lo},{hi}]", count))
        previous, lo = cumulative, hi
    return out


# --- phases ---------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    target: str
    listings: int | None
    load: LoadResult
    client_cpu: float
    server_cpu: float
    pg_cpu: float | None
    machine_busy: float  # share of all cores

    @property
    def server_us_per_request(self) -> float | None:
        """Server CPU per completed request: robust to other load on the machine."""
        r = self.load
        done = r.completed / r.window_s if r.window_s else 0.0
        return self.server_cpu / done * 1e6 if done else None

    @property
    def others_cpu(self) -> float:
        """CPU (share of one core) used by everything outside this benchmark's processes."""
        ours = self.client_cpu + self.server_cpu + (self.pg_cpu or 0.0)
        return max(0.0, self.machine_busy * (os.cpu_count() or 1) - ours)

    mean_batch: float | None = None
    batch_buckets: list[tuple[str, int]] = field(default_factory=list)
    mean_commit_ms: float | None = None
    commits: int = 0
    streams: "StreamStats | None" = None

    def row(self) -> list[str]:
        r = self.load
        rejected = ", ".join(f"{k}×{v}" for k, v in r.codes.most_common(3)) or "0"
        return [
            self.name,
            "-" if self.listings is None else str(self.listings),
            f"{r.ok_per_s:,.0f}",
            f"{r.percentile_ms(0.5):.1f}",
            f"{r.percentile_ms(0.99):.1f}",
            f"{r.ok:,}",
            rejected,
            f"{self.client_cpu:.0%}",
            f"{self.server_cpu:.0%}",
            "-" if self.pg_cpu is None else f"{self.pg_cpu:.0%}",
            f"{self.others_cpu:.0%}",
            f"{self.machine_busy:.0%}",
            "-" if self.server_us_per_request is None else f"{self.server_us_per_request:.0f}",
            "-" if self.mean_batch is None else f"{self.mean_batch:.1f}",
        ]


@dataclass
class StreamStats:
    subscribers: int
    ready: int
    events_per_s: float
    mib_per_s: float
    reconnects: int
    dropped: int  # streams the service closed for falling behind (its /metrics)
    consumer_cpu: float  # share of one core


@dataclass
class Config:
    connections: int
    seconds: float
    warmup: float
    listing_counts: list[int]
    bid_amount: int
    max_bids: int | None
    idempotency_keys: bool
    ceiling: bool
    chain_off: bool = False
    subscribers: int = 0
    stream_rounds: int = 2
    warm_wal_mib: int = DEFAULT_WARM_WAL_MIB

    @property
    def services(self) -> tuple[str, ...]:
        """The services under test, in phase order (the durable one first)."""
        if self.chain_off:
            return ("durable", "chain_off", "journal_off")
        return ("durable", "journal_off")


async def run_phase(
    name: str,
    target: str,
    service: Service,
    requests: list[list[bytes]],
    cfg: Config,
    max_requests: int,
    listings: int | None,
    client: httpx.AsyncClient | None = None,
) -> Phase:
    log(
        f"phase {name}"
        + (f", {listings} listing(s)" if listings else "")
        + f": {cfg.connections} connections, {cfg.warmup:g} s warm-up + {cfg.seconds:g} s,"
        f" at most {max_requests:,} requests"
    )
    before_hist = await batch_histogram(client, service) if client is not None else None
    before = service.cpu()
    load = Load(
        name if listings is None else f"{name} L={listings}",
        service.port,
        requests,
        cfg.warmup,
        cfg.seconds,
        max_requests,
    )
    result = await load.run()
    after = service.cpu()
    wall = after.wall - before.wall
    phase = Phase(
        name,
        target,
        listings,
        result,
        client_cpu=(after.client - before.client) / wall,
        server_cpu=(after.server - before.server) / wall,
        pg_cpu=None if after.pg is None or before.pg is None else (after.pg - before.pg) / wall,
        machine_busy=(after.busy - before.busy) / max(1.0, after.total - before.total),
    )
    if client is not None and before_hist is not None:
        after_hist = await batch_histogram(client, service)
        batch = histogram_delta(before_hist["batch"], after_hist["batch"])
        commit = histogram_delta(before_hist["commit"], after_hist["commit"])
        if batch.get("_count"):
            phase.commits = int(batch["_count"])
            phase.mean_batch = batch["_sum"] / batch["_count"]
            phase.batch_buckets = bucket_ranges(batch)
        if commit.get("_count"):
            phase.mean_commit_ms = commit["_sum"] / commit["_count"] * 1000
    r = result
    log(
        f"  -> {r.ok_per_s:,.0f} accepted/s over {r.window_s:.2f} s, {r.ok:,} accepted,"
        f" {r.rejected:,} other ({dict(r.codes) or 'none'}), p50 {r.percentile_ms(0.5):.1f} ms,"
        f" p99 {r.percentile_ms(0.99):.1f} ms"
        + (" [stopped at the request cap]" if r.capped else "")
    )
    log(
        f"     cpu: client {phase.client_cpu:.0%}, server {phase.server_cpu:.0%}, postgres "
        + ("n/a" if phase.pg_cpu is None else f"{phase.pg_cpu:.0%}")
        + f", everything else {phase.others_cpu:.0%};"
        f" machine {phase.machine_busy:.0%} busy of {os.cpu_count()} cores; server"
        f" {phase.server_us_per_request or 0:.0f} µs CPU per request"
    )
    if phase.mean_batch is not None:
        log(
            f"     group commit: {phase.commits:,} commits, mean {phase.mean_batch:.1f} entries,"
            f" mean commit {phase.mean_commit_ms or 0:.2f} ms, batches "
            + ", ".join(f"{k}:{v}" for k, v in phase.batch_buckets)
        )
    return phase


def print_table(phases: list[Phase]) -> None:
    header = [
        "phase",
        "listings",
        "2xx/s",
        "p50 ms",
        "p99 ms",
        "accepted",
        "rejected",
        "client cpu",
        "server cpu",
        "pg cpu",
        "others cpu",
        "machine",
        "server µs/req",
        "mean batch",
    ]
    rows = [header] + [p.row() for p in phases]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        log(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            log("  ".join("-" * w for w in widths))


async def bench(
    cfg: Config, services: dict[str, Service], admin: str, durable_url: str | None
) -> tuple[list[Phase], str]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # cancel cleanly; the caller stops processes
        loop.add_signal_handler(signum, task.cancel)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    admin_header = {"Authorization": f"Bearer {admin}"}  # /metrics needs a key
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=admin_header) as client:
        log("waiting for the services to be ready")
        waits = [wait_ready(client, services[name], "/readyz", 120) for name in cfg.services]
        waits.append(wait_ready(client, services["trivial"], "POST", 60))
        if "raw" in services:
            waits.append(wait_ready(client, services["raw"], "POST", 30))
        await asyncio.gather(*waits)
        log("ready; minting lender keys")
        keys = {
            name: await mint_lender_keys(client, services[name], admin) for name in cfg.services
        }
        phases: list[Phase] = []
        book_cap = LISTING_AMOUNT // cfg.bid_amount

        def cap(listings: int) -> int:
            computed = int(BOOK_FILL_LIMIT * listings * book_cap)
            return computed if cfg.max_bids is None else min(cfg.max_bids, computed)

        fake = [str(uuid.uuid4()) for _ in range(max(cfg.listing_counts))]
        for name in ("raw", "trivial") if cfg.ceiling else ("trivial",):
            service = services[name]
            requests = bid_requests(
                service.port, fake[:1], ["none"], cfg.connections, cfg.bid_amount, False
            )
            label = "client ceiling (raw)" if name == "raw" else "trivial FastAPI"
            phases.append(
                await run_phase(
                    label, name, service, requests, cfg, cfg.max_bids or BASELINE_CAP, None
                )
            )
        for count in cfg.listing_counts:
            for name in cfg.services:
                label = name.replace("_", " ")
                service = services[name]
                ids = await open_listings(client, service, admin, count, 7 * 24 * 3600)
                log(f"opened {count} listing(s) on {name}")
                requests = bid_requests(
                    service.port,
                    ids,
                    keys[name],
                    cfg.connections,
                    cfg.bid_amount,
                    cfg.idempotency_keys,
                )
                phases.append(
                    await run_phase(
                        label,
                        name,
                        service,
                        requests,
                        cfg,
                        cap(count),
                        count,
                        client if name != "journal_off" else None,
                    )
                )
            if cfg.subscribers:
                phases += await stream_phases(
                    cfg, client, services["durable"], admin, keys["durable"], count, cap(count)
                )
        return phases, await check_stored(durable_url, phases)


async def stream_phases(
    cfg: Config,
    client: httpx.AsyncClient,
    service: Service,
    admin: str,
    keys: list[str],
    count: int,
    max_requests: int,
) -> list[Phase]:
    """The durable service without streams and with `cfg.subscribers` streams on its hot
    listing, alternately (`cfg.stream_rounds` times each), each phase on fresh listings: the
    machine is shared, so each figure is set beside baselines measured around it."""
    watcher = await mint_key(client, service, admin, "bench-watcher")
    out: list[Phase] = []
    for _ in range(cfg.stream_rounds):
        for with_streams in (False, True):
            ids = await open_listings(client, service, admin, count, 7 * 24 * 3600)
            requests = bid_requests(
                service.port, ids, keys, cfg.connections, cfg.bid_amount, cfg.idempotency_keys
            )
            if with_streams:
                out.append(
                    await with_subscribers(cfg, client, service, watcher, ids[0], requests,
                                           max_requests, count)
                )
            else:
                out.append(
                    await run_phase(
                        "durable, no streams", "durable_no_streams", service, requests, cfg,
                        max_requests, count, client,
                    )
                )
    return out


async def with_subscribers(
    cfg: Config,
    client: httpx.AsyncClient,
    service: Service,
    watcher: str,
    listing: str,
    requests: list[list[bytes]],
    max_requests: int,
    count: int,
) -> Phase:
    consumer = Consumer(service.port, watcher, listing, cfg.subscribers)
    try:
        ready = await consumer.ready()
        log(f"{ready} of {cfg.subscribers} streams attached to listing {listing}")
        dropped_before = await metric_value(client, service, DROPPED_METRIC)
        before, cpu_before = await consumer.mark(), proc_cpu_s(consumer.pid)
        phase = await run_phase(
            f"durable + {cfg.subscribers} streams", "durable_streams", service, requests, cfg,
            max_requests, count, client,
        )
        after, cpu_after = await consumer.mark(), proc_cpu_s(consumer.pid)
        dropped = await metric_value(client, service, DROPPED_METRIC)
    finally:
        consumer.stop()
    wall = after["t"] - before["t"]
    phase.streams = st = StreamStats(
        cfg.subscribers, ready, (after["events"] - before["events"]) / wall,
        (after["bytes"] - before["bytes"]) / wall / 2**20,
        after["reconnects"] - before["reconnects"], int(dropped - dropped_before),
        (cpu_after - cpu_before) / wall,
    )
    log(
        f"     streams: {st.events_per_s:,.0f} events/s delivered in all"
        f" ({st.mib_per_s:,.1f} MiB/s), {st.dropped} dropped by the service for falling"
        f" behind, {st.reconnects} reconnects, subscriber process cpu {st.consumer_cpu:.0%}"
    )
    return phase


class Consumer:
    """bench/streams.py as a child process: N streams read outside the service's process."""

    def __init__(self, port: int, key: str, listing: str, subscribers: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable, str(ROOT / "bench" / "streams.py"), "--port", str(port),
                "--key", key, "--listing", listing, "--subscribers", str(subscribers),
            ],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.pid = self.process.pid

    async def ready(self) -> int:
        message = await self._read()
        if message.get("errors"):
            log(f"  stream errors while attaching: {message['errors']}")
        return int(message["ready"])

    async def mark(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write("mark\n")
        self.process.stdin.flush()
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), 120)
        if not line:
            raise RuntimeError(f"the stream consumer exited ({self.process.poll()})")
        message: dict[str, Any] = json.loads(line)
        return message

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.process.stdin is not None
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


async def check_stored(durable_url: str | None, phases: list[Phase]) -> str:
    """Every 201 from the durable service must be a row in its (fresh) database."""
    acked = sum(p.load.all_ok for p in phases if p.target == "durable")
    if durable_url is None:
        return f"{acked:,} bids acknowledged (database shared, not counted)"
    import asyncpg

    conn = await asyncpg.connect(durable_url)
    try:
        stored = int(await conn.fetchval("SELECT count(*) FROM bids"))
    finally:
        await conn.close()
    verdict = "ok" if stored >= acked else "MISSING ROWS"
    return f"{stored:,} bid rows in postgres for {acked:,} acknowledged (201) bids: {verdict}"


def summarise(
    cfg: Config, phases: list[Phase], load_before: tuple[float, float, float], elapsed: float
) -> dict[str, Any]:
    load_after = os.getloadavg()
    by = {(p.target, p.listings): p for p in phases}
    trivial = by[("trivial", None)].load.ok_per_s
    raw = by.get(("raw", None))
    out: dict[str, Any] = {
        "accepted_bids_per_s": {},
        "p50_ms": {},
        "p99_ms": {},
        "rejected": {},
        "journal_off_per_s": {},
        "chain_off_per_s": {},
        "ratio_durable_over_chain_off": {},
        "ratio_durable_over_trivial": {},
        "ratio_durable_over_journal_off": {},
        "mean_batch_size": {},
        "batch_buckets": {},
    }
    for count in cfg.listing_counts:
        key = str(count)
        durable, off = by[("durable", count)], by[("journal_off", count)]
        rate = durable.load.ok_per_s
        out["accepted_bids_per_s"][key] = round(rate, 1)
        out["p50_ms"][key] = round(durable.load.percentile_ms(0.5), 2)
        out["p99_ms"][key] = round(durable.load.percentile_ms(0.99), 2)
        out["rejected"][key] = dict(durable.load.codes)
        out["journal_off_per_s"][key] = round(off.load.ok_per_s, 1)
        out["ratio_durable_over_trivial"][key] = round(rate / trivial, 3) if trivial else None
        out["ratio_durable_over_journal_off"][key] = (
            round(rate / off.load.ok_per_s, 3) if off.load.ok_per_s else None
        )
        chain_off = by.get(("chain_off", count))
        if chain_off is not None:
            out["chain_off_per_s"][key] = round(chain_off.load.ok_per_s, 1)
            out["ratio_durable_over_chain_off"][key] = (
                round(rate / chain_off.load.ok_per_s, 3) if chain_off.load.ok_per_s else None
            )
        out["mean_batch_size"][key] = (
            None if durable.mean_batch is None else round(durable.mean_batch, 2)
        )
        out["batch_buckets"][key] = dict(durable.batch_buckets)
    if cfg.subscribers:
        out["streams"] = {str(c): stream_summary(phases, c) for c in cfg.listing_counts}
    out["cpu_share_of_one_core"] = {
        p.name + ("" if p.listings is None else f" L={p.listings}"): {
            "client": round(p.client_cpu, 2),
            "server": round(p.server_cpu, 2),
            "postgres": None if p.pg_cpu is None else round(p.pg_cpu, 2),
            "others": round(p.others_cpu, 2),
            "server_us_per_request": None
            if p.server_us_per_request is None
            else round(p.server_us_per_request),
        }
        for p in phases
    }
    out.update(
        trivial_per_s=round(trivial, 1),
        client_ceiling_per_s=None if raw is None else round(raw.load.ok_per_s, 1),
        connections=cfg.connections,
        seconds=cfg.seconds,
        warmup_s=cfg.warmup,
        warm_wal_mib=cfg.warm_wal_mib,
        bid_amount=cfg.bid_amount,
        cpu_count=os.cpu_count(),
        loadavg_before=[round(x, 2) for x in load_before],
        loadavg_after=[round(x, 2) for x in load_after],
        elapsed_s=round(elapsed, 1),
    )
    return out


def stream_summary(phases: list[Phase], count: int) -> dict[str, Any]:
    """Mean accepted bids/s with streams over the mean without (alternating phases)."""
    ours = [p for p in phases if p.listings == count]
    with_streams = [p for p in ours if p.target == "durable_streams"]
    without = [p for p in ours if p.target == "durable_no_streams"]
    rate = sum(p.load.ok_per_s for p in with_streams) / len(with_streams)
    baseline = sum(p.load.ok_per_s for p in without) / len(without)
    stats = [p.streams for p in with_streams if p.streams is not None]
    return {
        "subscribers": stats[0].subscribers,
        "attached": [s.ready for s in stats],
        "accepted_bids_per_s": round(rate, 1),
        "accepted_bids_per_s_without": round(baseline, 1),
        "ratio": round(rate / baseline, 3) if baseline else None,
        "per_phase_with": [round(p.load.ok_per_s, 1) for p in with_streams],
        "per_phase_without": [round(p.load.ok_per_s, 1) for p in without],
        "events_delivered_per_s": round(sum(s.events_per_s for s in stats) / len(stats), 1),
        "mib_delivered_per_s": round(sum(s.mib_per_s for s in stats) / len(stats), 1),
        "dropped_for_falling_behind": sum(s.dropped for s in stats),
        "reconnects": sum(s.reconnects for s in stats),
        "subscriber_process_cpu": [round(s.consumer_cpu, 2) for s in stats],
        "server_cpu_with": [round(p.server_cpu, 2) for p in with_streams],
        "server_cpu_without": [round(p.server_cpu, 2) for p in without],
        "p99_ms_with": [round(p.load.percentile_ms(0.99), 2) for p in with_streams],
    }


@contextlib.contextmanager
def postgres(tmp: Path, warm_wal_mib: int = 0) -> Iterator[tuple[str, int | None]]:
    """(base URI, postmaster pid or None): DATABASE_URL if set, else an embedded server, its
    WAL warmed first with `warm_wal_mib` (`warm_wal`)."""
    given = os.environ.get("DATABASE_URL") or os.environ.get("LOAN_AUCTION_DATABASE_URL")
    if given:
        yield given, None
        return
    sys.path.insert(0, str(ROOT))
    from app.database import start_embedded

    log(f"starting embedded postgres under {tmp}")
    server = start_embedded(tmp / "data")
    try:
        if warm_wal_mib > 0:
            log(f"warming its WAL: {warm_wal_mib} MiB, then a checkpoint")
            asyncio.run(warm_wal(str(server.get_uri()), warm_wal_mib))
        pid = server.get_pid()
        yield str(server.get_uri()), int(pid) if pid is not None else None
    finally:
        server.cleanup()


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        prog="bench/burst.py", description="Bid-burst benchmark (see the module docstring)."
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--listings", default="1,100", help="comma-separated listing counts")
    parser.add_argument("--bid-amount", type=int, default=5_000)
    parser.add_argument(
        "--max-bids",
        type=int,
        default=None,
        help="request cap per phase (default: 80%% of the books' room)",
    )
    parser.add_argument(
        "--idempotency-keys",
        action="store_true",
        help="send a fresh Idempotency-Key with every bid",
    )
    parser.add_argument(
        "--chain-off",
        action="store_true",
        help="also measure the durable service without the audit chain's hashing",
    )
    parser.add_argument(
        "--subscribers",
        type=int,
        default=0,
        help="also run the durable service with this many live streams on the hot listing",
    )
    parser.add_argument(
        "--stream-rounds",
        type=int,
        default=2,
        help="with --subscribers: alternate this many phases without and with streams",
    )
    parser.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the raw-server measurement of the client's own ceiling",
    )
    parser.add_argument(
        "--warm-wal",
        type=int,
        default=DEFAULT_WARM_WAL_MIB,
        metavar="MIB",
        help="write this much WAL into the embedded Postgres first, then checkpoint, so its"
        f" segments are recycled as on a server that has been running (default:"
        f" {DEFAULT_WARM_WAL_MIB}; 0 measures a new cluster)",
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--"]:  # `loan-auction bench -- --seconds 5` passes the separator on
        argv = argv[1:]
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.listings.split(",") if c.strip()]
    if not counts or min(counts) < 1 or args.connections < 1 or args.seconds <= 0:
        parser.error("need listing counts >= 1, connections >= 1 and seconds > 0")
    return Config(
        args.connections,
        args.seconds,
        max(0.0, args.warmup),
        counts,
        args.bid_amount,
        args.max_bids,
        args.idempotency_keys,
        not args.no_ceiling,
        args.chain_off,
        max(0, args.subscribers),
        max(1, args.stream_rounds),
        max(0, args.warm_wal),
    )


def start_and_run(
    cfg: Config,
    services: dict[str, Service],
    admin: str,
    tmp: Path,
    base: str,
    pg_pid: int | None,
    databases: list[str] | None,
) -> tuple[list[Phase], str]:
    """Spawn the servers into `services` (the caller stops them), then run the phases."""
    urls = [database_url(base, n) for n in databases] if databases else [base] * 3
    durable_url = urls[0] if databases else None
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOAN_AUCTION_")}
    env.pop("DATABASE_URL", None)
    env.update(
        LOAN_AUCTION_ADMIN_KEY=admin,
        LOAN_AUCTION_RATE_LIMIT_PER_S="0",
        LOAN_AUCTION_RATE_LIMIT_UNAUTHENTICATED_PER_S="0",
        LOAN_AUCTION_SECRETS_KEY=Fernet.generate_key().decode(),
        LOAN_AUCTION_ACCESS_LOG="false",  # a log line per bid would be measured too
        LOAN_AUCTION_DATA_DIR=str(tmp / "service-data"),
        PYTHONUNBUFFERED="1",
    )
    for name, url in zip(cfg.services, urls, strict=False):
        port = free_port()
        services[name] = spawn(
            name,
            [*serve_command(name), "--host", HOST, "--port", str(port)],
            {**env, "DATABASE_URL": url},
            tmp,
            port,
        )
        services[name].pg_pid = pg_pid
    baselines: list[tuple[str, list[str]]] = [("trivial", [])]
    if cfg.ceiling:
        baselines.append(("raw", ["--raw"]))
    trivial = str(ROOT / "bench" / "trivial_app.py")
    for name, extra in baselines:
        port = free_port()
        services[name] = spawn(
            name,
            [sys.executable, trivial, "--host", HOST, "--port", str(port), *extra],
            env,
            tmp,
            port,
        )
    log(
        "started "
        + ", ".join(f"{n} (pid {s.process.pid}, port {s.port})" for n, s in services.items())
    )
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        phases, stored = runner(bench(cfg, services, admin, durable_url))
    except asyncio.CancelledError:
        raise SystemExit("interrupted") from None
    for service in services.values():
        if service.process.poll() is not None:
            log(f"warning: {service.name} exited during the run:\n{service.log_tail()}")
    log(f"durability check: {stored}")
    log("stopping services")
    return phases, stored


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    load_before = os.getloadavg()
    started = time.perf_counter()
    log(
        f"loan-auction bid burst: {cfg.connections} connections, {cfg.seconds:g} s per phase,"
        f" listings {cfg.listing_counts}, {os.cpu_count()} cores, load average"
        f" {' '.join(f'{x:.2f}' for x in load_before)}"
    )
    admin = "la_admin_bench_" + uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix="loan-auction-bench-"))
    services: dict[str, Service] = {}
    names = [f"la_bench_{os.getpid()}_{name}" for name in cfg.services]
    try:
        with postgres(tmp, cfg.warm_wal_mib) as (base, pg_pid):
            created = asyncio.run(create_databases(base, names))
            try:
                phases, stored = start_and_run(
                    cfg, services, admin, tmp, base, pg_pid, names if created else None
                )
            finally:
                for service in services.values():
                    stop(service)
                if created:
                    asyncio.run(drop_databases(base, names))
    finally:
        for service in services.values():
            stop(service)
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    log("")
    log(
        f"summary ({cfg.connections} connections, {cfg.warmup:g} s warm-up + {cfg.seconds:g} s"
        " per phase; 2xx/s = accepted (201) per second; cpu as a share of one core, 'others' ="
        " processes outside this benchmark, machine = share of all cores busy)"
    )
    print_table(phases)
    summary = summarise(cfg, phases, load_before, elapsed)
    summary["durability_check"] = stored
    for count in cfg.listing_counts:
        key = str(count)
        log(
            f"listings={count}: durable/trivial {summary['ratio_durable_over_trivial'][key]},"
            f" durable/journal-off {summary['ratio_durable_over_journal_off'][key]},"
            f" durable/chain-off {summary['ratio_durable_over_chain_off'].get(key, '-')},"
            f" mean batch {summary['mean_batch_size'][key]},"
            f" batch buckets {summary['batch_buckets'][key]}"
        )
    for count, st in summary.get("streams", {}).items():
        log(
            f"listings={count}: with {st['subscribers']} streams {st['accepted_bids_per_s']:,.0f}"
            f" bids/s vs {st['accepted_bids_per_s_without']:,.0f} without (means of the"
            f" alternating phases): ratio {st['ratio']};"
            f" {st['events_delivered_per_s']:,.0f} events/s delivered"
            f" ({st['mib_delivered_per_s']} MiB/s), {st['dropped_for_falling_behind']}"
            f" streams dropped for falling behind, {st['reconnects']} reconnects"
        )
    if summary["client_ceiling_per_s"] is not None:
        log(
            f"load generator ceiling (raw canned server): {summary['client_ceiling_per_s']:,.0f}"
            f" req/s; trivial FastAPI: {summary['trivial_per_s']:,.0f} req/s"
        )
    log(f"durability check: {stored}")
    log(
        f"load average before {summary['loadavg_before']}, after {summary['loadavg_after']};"
        f" elapsed {elapsed:.0f} s"
    )
    print(json.dumps(summary, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
