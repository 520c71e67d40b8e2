"""Webhook delivery benchmark: how many deliveries a second one endpoint receives.

Run by hand from the repo root:

    python bench/webhooks.py [--events 20000] [--concurrency 1,8,32] [--live-seconds 5]

For each per-endpoint concurrency in `--concurrency`, on a fresh database (embedded PostgreSQL
in a temporary folder, or DATABASE_URL) it starts the service (`loan-auction serve` on a free
127.0.0.1 port) and a fast receiver in this process (raw asyncio HTTP/1.1 on 127.0.0.1, answers
204 at once, keep-alive), subscribes the receiver to `bid.placed`, then:

1. backlog drain: the receiver holds every request while `--events` bids are placed (so their
   deliveries pile up in Postgres), then answers everything: deliveries per second from the
   release to the last first-time delivery, with the service's and Postgres' CPU per delivery;
2. live: bids as fast as 32 connections place them for `--live-seconds`, delivered while they
   come: bids/s, deliveries/s, and the lag from each event's `created_at` to its arrival.

The receiver checks the Standard Webhooks signature of a sample of deliveries and counts
duplicates (at-least-once allows them; none are expected). Progress goes to stdout; the last
line is one JSON object. Every subprocess is stopped on exit.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import burst
import httpx
import orjson
from burst import HOST, Service, log
from cryptography.fernet import Fernet
from standardwebhooks import Webhook

SAMPLE_EVERY = 10  # signature check and lag measurement on every tenth delivery


@dataclass
class Receiver:
    """Raw HTTP/1.1: reads a request, waits for `gate`, answers 204; notes first arrivals."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    secret: str = ""
    arrivals: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    lags: list[float] = field(default_factory=list)
    verified: int = 0
    bad_signatures: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode().split("\r\n")[1:]:
                    name, _, value = line.partition(": ")
                    headers[name.lower()] = value
                body = await reader.readexactly(int(headers["content-length"]))
                await self.gate.wait()
                self._note(headers, body)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def close(self) -> None:
        for writer in list(self.writers):
            writer.close()

    def _note(self, headers: dict[str, str], body: bytes) -> None:
        self.requests += 1
        message_id = headers["webhook-id"]
        if message_id in self.arrivals:
            return
        self.arrivals[message_id] = time.perf_counter()
        if len(self.arrivals) % SAMPLE_EVERY:
            return
        try:
            Webhook(self.secret).verify(body, headers)
            self.verified += 1
        except Exception:
            self.bad_signatures += 1
        created = datetime.fromisoformat(orjson.loads(body)["created_at"])
        self.lags.append(time.time() - created.timestamp())


@dataclass
class Run:
    concurrency: int
    events: int
    drain_s: float = 0.0
    drain_per_s: float = 0.0
    service_cpu_us: float = 0.0
    postgres_cpu_us: float = 0.0
    live_bids_per_s: float = 0.0
    live_deliveries_per_s: float = 0.0
    live_tail_s: float = 0.0
    lag_p50_ms: float = 0.0
    lag_p99_ms: float = 0.0
    duplicates: int = 0
    verified: int = 0
    bad_signatures: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


async def deliveries_created(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM webhook_deliveries"))
    finally:
        await conn.close()


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def place_bids(service: Service, ids: list[str], keys: list[str], count: int,
                     seconds: float) -> burst.LoadResult:
    requests = burst.bid_requests(service.port, ids, keys, 32, 5_000, False)
    return await burst.Load("bids", service.port, requests, 0.0, seconds, count).run()


async def measure(service: Service, db_url: str, admin: str, cfg: argparse.Namespace,
                  concurrency: int) -> Run:
    run = Run(concurrency, cfg.events)
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    auth = {"Authorization": f"Bearer {admin}"}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await burst.wait_ready(client, service, "/readyz", 120)
            created = await client.post(f"{service.base}/v1/webhook-endpoints", headers=auth,
                                        json={"url": f"http://{HOST}:{port}/hooks",
                                              "event_types": ["bid.placed"]})
            created.raise_for_status()
            receiver.secret = created.json()["secret"]
            keys = await burst.mint_lender_keys(client, service, admin)
            ids = await burst.open_listings(client, service, admin, 1, 7 * 24 * 3600)

        log(f"[concurrency {concurrency}] backlog: {cfg.events:,} bids, receiver holding")
        placed = await place_bids(service, ids, keys, cfg.events, 600)
        assert placed.all_ok == cfg.events, f"only {placed.all_ok} bids accepted"

        async def all_fanned_out() -> bool:
            return bool(await deliveries_created(db_url) == cfg.events)

        await wait_for(all_fanned_out, 120, "the fan-out")
        log(f"  all {cfg.events:,} deliveries pending; releasing the receiver")
        before = service.cpu()
        released = time.perf_counter()
        receiver.gate.set()

        async def drained() -> bool:
            return bool(len(receiver.arrivals) >= cfg.events)

        await wait_for(drained, 600, "the backlog to drain")
        after = service.cpu()
        run.drain_s = max(receiver.arrivals.values()) - released
        run.drain_per_s = cfg.events / run.drain_s
        run.service_cpu_us = (after.server - before.server) / cfg.events * 1e6
        if after.pg is not None and before.pg is not None:
            run.postgres_cpu_us = (after.pg - before.pg) / cfg.events * 1e6
        log(f"  -> {run.drain_per_s:,.0f} deliveries/s ({run.drain_s:.2f} s), service"
            f" {run.service_cpu_us:.0f} µs CPU and postgres {run.postgres_cpu_us:.0f} µs per"
            " delivery")

        log(f"[concurrency {concurrency}] live: bids for {cfg.live_seconds:g} s")
        receiver.lags.clear()
        start_count = len(receiver.arrivals)
        started = time.perf_counter()
        live = await place_bids(service, ids, keys, 10**9, cfg.live_seconds)
        bids_done = time.perf_counter()
        target = start_count + live.all_ok

        async def caught_up() -> bool:
            return bool(len(receiver.arrivals) >= target)

        await wait_for(caught_up, 600, "live deliveries")
        last = max(receiver.arrivals.values())
        run.live_bids_per_s = live.all_ok / (bids_done - started)
        run.live_deliveries_per_s = live.all_ok / (last - started)
        run.live_tail_s = last - bids_done
        lags = sorted(receiver.lags)
        run.lag_p50_ms = statistics.median(lags) * 1000
        run.lag_p99_ms = lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000
        log(f"  -> {run.live_bids_per_s:,.0f} bids/s and {run.live_deliveries_per_s:,.0f}"
            f" deliveries/s; last delivery {run.live_tail_s:.2f} s after the last bid; lag p50"
            f" {run.lag_p50_ms:.0f} ms, p99 {run.lag_p99_ms:.0f} ms")
    finally:
        server.close()
        receiver.close()
        await asyncio.sleep(0.1)  # the handlers see their connections end
    run.duplicates = receiver.requests - len(receiver.arrivals)
    run.verified, run.bad_signatures = receiver.verified, receiver.bad_signatures
    return run


def start_service(name: str, db_url: str, admin: str, tmp: Path, concurrency: int,
                  pg_pid: int | None) -> Service:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOAN_AUCTION_")}
    env.update(
        DATABASE_URL=db_url, LOAN_AUCTION_ADMIN_KEY=admin, LOAN_AUCTION_RATE_LIMIT_PER_S="0",
        LOAN_AUCTION_SECRETS_KEY=Fernet.generate_key().decode(),
        LOAN_AUCTION_WEBHOOK_ALLOW_PRIVATE="true",  # the receiver is on 127.0.0.1
        LOAN_AUCTION_WEBHOOK_CONCURRENCY=str(concurrency),
        LOAN_AUCTION_WEBHOOK_TIMEOUT_S="300",  # held requests must not time out
        LOAN_AUCTION_DATA_DIR=str(tmp / f"data-{name}"), PYTHONUNBUFFERED="1",
    )
    port = burst.free_port()
    service = burst.spawn(name, [*burst.serve_command(), "--host", HOST, "--port", str(port)],
                          env, tmp, port)
    service.pg_pid = pg_pid
    return service


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/webhooks.py", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--live-seconds", type=float, default=5.0)
    cfg = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load_before = os.getloadavg()
    log(f"webhook delivery benchmark: {cfg.events:,} events, concurrency {cfg.concurrency},"
        f" {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in load_before)}")
    tmp = Path(tempfile.mkdtemp(prefix="loan-auction-webhooks-"))
    admin = "la_admin_bench_" + uuid.uuid4().hex
    runs: list[Run] = []
    try:
        with burst.postgres(tmp) as (base, pg_pid):
            for concurrency in [int(c) for c in cfg.concurrency.split(",") if c.strip()]:
                name = f"la_bench_hooks_{os.getpid()}_{concurrency}"
                created = asyncio.run(burst.create_databases(base, [name]))
                db_url = burst.database_url(base, name) if created else base
                service = start_service(f"service-{concurrency}", db_url, admin, tmp,
                                        concurrency, pg_pid)
                try:
                    runs.append(asyncio.run(measure(service, db_url, admin, cfg, concurrency)))
                finally:
                    burst.stop(service)
                    if created:
                        asyncio.run(burst.drop_databases(base, [name]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("")
    log("concurrency  drain/s  service µs/delivery  pg µs/delivery  live bids/s  live"
        " deliveries/s  lag p50 ms  lag p99 ms  duplicates  signatures ok/bad")
    for r in runs:
        log(f"{r.concurrency:>11}  {r.drain_per_s:>7,.0f}  {r.service_cpu_us:>19,.0f}"
            f"  {r.postgres_cpu_us:>14,.0f}  {r.live_bids_per_s:>11,.0f}"
            f"  {r.live_deliveries_per_s:>18,.0f}  {r.lag_p50_ms:>10,.0f}  {r.lag_p99_ms:>10,.0f}"
            f"  {r.duplicates:>10}  {r.verified}/{r.bad_signatures}")
    log(f"load average before {[round(x, 2) for x in load_before]},"
        f" after {[round(x, 2) for x in os.getloadavg()]}")
    print(json.dumps([r.__dict__ for r in runs], separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
