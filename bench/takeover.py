"""Takeover benchmark: how soon a hot standby serves after the writer is killed, and what the
router in front costs.

    python bench/takeover.py [--kills 10] [--seconds 8] [--connections 64] [--rounds 2]

In one run it starts PostgreSQL (embedded, in a temporary folder; or a fresh database on
DATABASE_URL), two instances of the service on that one database, and nginx in front of them
with `deploy/nginx.conf` (pointed at local ports, as the tests do; nginx must be installed).
Then:

1. takeover, `--kills` times: while 8 connections keep bidding through nginx, SIGKILL the
   writer and time, from the kill, (a) the first 201 from the standby, which a prober asks
   straight every 10 ms, and (b) the first 201 through nginx that the new writer answered;
   then start the killed instance again, on its port, as the new standby;
2. throughput, `--rounds` times in turn: N keep-alive connections post bids (each with an
   Idempotency-Key, as clients behind a retrying router should) straight to the writer, then
   through nginx, `--seconds` each after a warm-up second (bench/burst.py's load generator);
3. the takeovers of step 1 again, now that the open books hold every bid of step 2 (a
   takeover replays them all).

Prints the median and worst of each and the load average before and after; the last line is
one JSON object. Every process is stopped on exit.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from burst import (
    HOST,
    ROOT,
    Load,
    LoadResult,
    Service,
    bid_requests,
    create_databases,
    database_url,
    drop_databases,
    free_port,
    log,
    mint_lender_keys,
    open_listings,
    postgres,
    serve_command,
    spawn,
    stop,
)

sys.path.insert(0, str(ROOT))
from tests.e2e.router import Router  # noqa: E402 - the tests' nginx launcher, after sys.path

BACKGROUND_CONNECTIONS = 8
LISTINGS_PER_PHASE = 10
BID_AMOUNT = 5_000


class Pair:
    """Two instances on one database; `writer` and `standby` swap at every takeover."""

    def __init__(self, url: str, env: dict[str, str], folder: Path) -> None:
        self.env = {**env, "DATABASE_URL": url}
        self.folder = folder
        self.ports = {"a": free_port(), "b": free_port()}
        self.services: dict[str, Service] = {}
        self.writer = "a"

    @property
    def standby(self) -> str:
        return "b" if self.writer == "a" else "a"

    def start(self, name: str) -> None:
        port = self.ports[name]
        argv = [*serve_command(), "--host", HOST, "--port", str(port)]
        self.services[name] = spawn(name, argv, self.env, self.folder, port)

    async def wait(self, name: str, want: int, timeout: float = 60.0) -> None:
        service = self.services[name]
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if service.process.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{service.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(service.base + "/readyz")).status_code == want:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{name}: /readyz not {want} in {timeout:.0f} s:\n{service.log_tail()}")

    def kill_writer(self) -> None:
        process = self.services[self.writer].process
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for service in self.services.values():
            stop(service)


async def throughput(pair: Pair, router: Router, admin: str, connections: int,
                     seconds: float, rounds: int) -> dict[str, list[LoadResult]]:
    writer = pair.services[pair.writer]
    results: dict[str, list[LoadResult]] = {"direct": [], "nginx": []}
    async with httpx.AsyncClient(timeout=30.0) as client:
        keys = await mint_lender_keys(client, writer, admin)
        for round_ in range(1, rounds + 1):
            for target, port in (("direct", writer.port), ("nginx", router.port)):
                ids = await open_listings(client, writer, admin, LISTINGS_PER_PHASE, 7 * 86400)
                requests = bid_requests(port, ids, keys, connections, BID_AMOUNT, True)
                cap = int(0.8 * LISTINGS_PER_PHASE * 1_000_000_000 // BID_AMOUNT)
                log(f"throughput round {round_}: {target}, {connections} connections")
                load = Load(f"{target} #{round_}", port, requests, 1.0, seconds, cap)
                results[target].append(await load.run())
    return results


async def takeovers(pair: Pair, router: Router, admin: str, kills: int) -> dict[str, Any]:
    open_bids: list[int] = []
    direct: list[float] = []
    routed: list[float] = []
    background: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=30.0) as client:
        keys = await mint_lender_keys(client, pair.services[pair.writer], admin)
        for n in range(1, kills + 1):
            writer = pair.services[pair.writer]
            ids = await open_listings(client, writer, admin, 1, 7 * 86400)
            requests = bid_requests(router.port, ids, keys, BACKGROUND_CONNECTIONS, BID_AMOUNT,
                                    True, per_connection=2048)
            load = Load(f"kill {n}", router.port, requests, 0.0, 3600.0, 10**9)
            busy = asyncio.create_task(load.run())
            await asyncio.sleep(1.0)
            open_bids.append(await count_open_bids(pair.env["DATABASE_URL"]))
            standby = pair.services[pair.standby]
            killed_at = time.perf_counter()
            probes = asyncio.gather(
                first_201(standby.base, ids[0], keys[0], None),
                first_201(router.base_url, ids[0], keys[0], f"{HOST}:{standby.port}"),
            )
            pair.kill_writer()
            straight, through = await asyncio.wait_for(probes, 60)
            direct.append(straight - killed_at)
            routed.append(through - killed_at)
            load.stopped = True
            background.update(str(k) for k in (await busy).statuses.elements())
            log(f"kill {n} ({open_bids[-1]:,} bids in open books): first 201 from the standby"
                f" {direct[-1]:.3f} s after the kill, through nginx {routed[-1]:.3f} s")
            killed, pair.writer = pair.writer, pair.standby
            pair.start(killed)
            await pair.wait(killed, 503)
    return {
        "open_bids": [min(open_bids), max(open_bids)],
        "standby_first_201_s": summary(direct),
        "nginx_first_201_from_new_writer_s": summary(routed),
        "background_answers_through_nginx": dict(background),
    }


async def count_open_bids(url: str) -> int:
    """What a takeover replays: the bids of every open listing."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM bids b JOIN listings l ON l.id = b.listing_id"
            " WHERE l.status = 'open'"
        ))
    finally:
        await conn.close()


async def first_201(base: str, listing_id: str, key: str, upstream: str | None) -> float:
    """Post a bid every 10 ms until a 201 (from `upstream`, when given); its perf_counter."""
    body = {"amount": BID_AMOUNT, "min_rate_bps": 1000}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as client:
        while True:
            headers["Idempotency-Key"] = uuid.uuid4().hex
            with contextlib.suppress(httpx.HTTPError):
                r = await client.post(f"/v1/listings/{listing_id}/bids", json=body,
                                      headers=headers)
                served = r.headers.get("X-Upstream", "").rsplit(",", 1)[-1].strip()
                if r.status_code == 201 and upstream in (None, served):
                    return time.perf_counter()
            await asyncio.sleep(0.01)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "each": [round(v, 3) for v in values],
        "median": round(statistics.median(values), 3),
        "worst": round(max(values), 3),
    }


def rates(results: list[LoadResult]) -> dict[str, Any]:
    return {
        "bids_per_s": [round(r.ok_per_s) for r in results],
        "p50_ms": [round(r.percentile_ms(0.5), 1) for r in results],
        "p99_ms": [round(r.percentile_ms(0.99), 1) for r in results],
        "other_answers": [dict(r.codes) for r in results],
    }


async def run(args: argparse.Namespace, base: str, folder: Path) -> dict[str, Any]:
    name = f"la_takeover_{os.getpid()}"
    created = await create_databases(base, [name])
    url = database_url(base, name) if created else base
    admin = "la_admin_bench_" + uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOAN_AUCTION_")}
    env.update(LOAN_AUCTION_ADMIN_KEY=admin, LOAN_AUCTION_RATE_LIMIT_PER_S="0",
               LOAN_AUCTION_DATA_DIR=str(folder / "data"), PYTHONUNBUFFERED="1")
    pair = Pair(url, env, folder)
    router = Router(folder / "nginx")
    try:
        pair.start("a")
        await pair.wait("a", 200)
        pair.start("b")
        await pair.wait("b", 503)
        await router.start([pair.ports["a"], pair.ports["b"]])
        log(f"two instances on {name if created else 'the given database'}, nginx on"
            f" {router.port}")
        small = await takeovers(pair, router, admin, args.kills)
        loads = await throughput(
            pair, router, admin, args.connections, args.seconds, args.rounds
        )
        large = await takeovers(pair, router, admin, args.kills)
    finally:
        router.stop()
        pair.stop_all()
        if created:
            await drop_databases(base, [name])
    direct, routed = loads["direct"], loads["nginx"]
    ratio = [round(n.ok_per_s / d.ok_per_s, 3) for d, n in zip(direct, routed, strict=True)]
    return {
        "throughput": {"direct": rates(direct), "nginx": rates(routed),
                       "ratio_nginx_over_direct": ratio, "connections": args.connections,
                       "seconds": args.seconds},
        "takeover_small_books": {"kills": args.kills, **small},
        "takeover_after_the_throughput_phases": {"kills": args.kills, **large},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="bench/takeover.py", description="Takeover benchmark (see the module docstring)."
    )
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds, in turn")
    args = parser.parse_args(argv)
    before = os.getloadavg()
    log(f"takeover benchmark: {args.kills} kills, {os.cpu_count()} cores, load average"
        f" {' '.join(f'{x:.2f}' for x in before)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loan-auction-takeover-") as tmp, \
            postgres(Path(tmp)) as (base, _):
        result = asyncio.run(run(args, base, Path(tmp)))
    result["loadavg_before"] = [round(x, 2) for x in before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    for key in ("takeover_small_books", "takeover_after_the_throughput_phases"):
        t = result[key]
        low, high = t["open_bids"]
        log(f"{key} ({low:,}-{high:,} open bids), kill -9 to the first 201 from the"
            f" standby: median {t['standby_first_201_s']['median']} s, worst"
            f" {t['standby_first_201_s']['worst']} s; through nginx: median"
            f" {t['nginx_first_201_from_new_writer_s']['median']} s, worst"
            f" {t['nginx_first_201_from_new_writer_s']['worst']} s")
    th = result["throughput"]
    log(f"bids/s straight to the writer {th['direct']['bids_per_s']}, through nginx"
        f" {th['nginx']['bids_per_s']} (ratio {th['ratio_nginx_over_direct']})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
