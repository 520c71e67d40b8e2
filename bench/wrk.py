"""The bid route under Debian's `wrk` (not needed by the tests or CI: `apt-get install wrk`).

    python bench/wrk.py [--connections 64] [--seconds 10] [--warmup 3] [--listings 1,100]
                        [--warm-wal MIB]

Starts, as bench/burst.py does, an embedded PostgreSQL (a fresh database per service; its WAL
warmed first as bench/burst.py's `--warm-wal` does, 1200 MiB unless told, 0 for none), the
durable service, the journal-off baseline (bench/variant_serve.py) and the trivial FastAPI
endpoint (bench/trivial_app.py), mints one lender key per service and funds it, and for each
listing count opens that many listings; then, in turn, `wrk -t1 -c<connections>` with
bench/bids.lua (5,000-unit bids at random rates over the listings, one key) for a warm-up of
`--warmup` seconds (discarded) and a measured `--seconds`, against the trivial endpoint, then
for each listing count the durable service and the journal-off one. Accepted bids/s counts
the 2xx answers (wrk reports the others); p50/p99 are wrk's. The last line is one JSON object.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from burst import (
    DEFAULT_WARM_WAL_MIB,
    HOST,
    ROOT,
    Service,
    create_databases,
    database_url,
    drop_databases,
    free_port,
    mint_lender_keys,
    open_listings,
    postgres,
    proc_cpu_s,
    serve_command,
    spawn,
    stop,
    wait_ready,
)
from cryptography.fernet import Fernet

LUA = ROOT / "bench" / "bids.lua"
#: wrk cannot stop at a bid count, so each listing takes 100 times burst.py's: at the journal-off
#: rate one listing of 10^9 filled within warm-up plus phase, and the bids refused once it was
#: covered (hundreds of non-2xx) changed what the phase measured.
LISTING_AMOUNT = 100_000_000_000
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(
    port: int, ids: list[str], key: str, connections: int, seconds: float
) -> dict[str, Any]:
    env = {**os.environ, "LISTINGS": ",".join(ids), "KEY": key}
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(LUA),
               f"http://{HOST}:{port}"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))  # type: ignore[union-attr]
    elapsed = float(re.search(r"requests in ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    other = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    latency = {q: float(v) * _UNITS[u] for q, v, u in
               re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    failed = int(other.group(1)) if other else 0
    return {"ok_per_s": (total - failed) / elapsed, "requests": total, "non_2xx": failed,
            "p50_ms": latency.get("50"), "p99_ms": latency.get("99"),
            "socket_errors": errors.group(1) if errors else None}


async def prepare(services: dict[str, Service], admin: str, counts: list[int]) -> dict[str, Any]:
    """Per service: its key, and its listings per count (the trivial endpoint needs none)."""
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        await wait_ready(client, services["trivial"], "POST", 60)
        for name in ("durable", "journal_off"):
            await wait_ready(client, services[name], "/readyz", 120)
            key = (await mint_lender_keys(client, services[name], admin))[0]
            out[name] = {"key": key, "listings": {
                c: await open_listings(
                    client, services[name], admin, c, 7 * 24 * 3600, LISTING_AMOUNT)
                for c in counts}}
    return out


def phase(label: str, service: Service, ids: list[str], key: str, args: argparse.Namespace,
          ) -> dict[str, Any]:
    run_wrk(service.port, ids, key, args.connections, args.warmup)
    cpu, wall = proc_cpu_s(service.process.pid), time.perf_counter()
    result = run_wrk(service.port, ids, key, args.connections, args.seconds)
    cpu, wall = proc_cpu_s(service.process.pid) - cpu, time.perf_counter() - wall
    result["server_us_per_request"] = round(cpu / max(1, result["requests"]) * 1e6)
    result["server_cpu"] = round(cpu / wall, 2)
    print(f"{label:28s} {result['ok_per_s']:9,.0f} 2xx/s  p50 {result['p50_ms']:6.2f} ms  p99"
          f" {result['p99_ms']:6.2f} ms  non-2xx {result['non_2xx']}  server"
          f" {result['server_us_per_request']} µs/req ({result['server_cpu']:.0%} cpu)"
          f"  load {os.getloadavg()[0]:.2f}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--listings", default="1,100")
    parser.add_argument("--warm-wal", type=int, default=DEFAULT_WARM_WAL_MIB, metavar="MIB",
                        help="as bench/burst.py's: the embedded Postgres's WAL warmed first"
                        f" (default {DEFAULT_WARM_WAL_MIB}; 0 measures a new cluster)")
    args = parser.parse_args()
    counts = [int(c) for c in args.listings.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    load_before = os.getloadavg()
    admin = "la_admin_wrk_" + uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix="loan-auction-wrk-"))
    services: dict[str, Service] = {}
    names = {n: f"la_wrk_{os.getpid()}_{n}" for n in ("durable", "journal_off")}
    results: dict[str, Any] = {}
    try:
        with postgres(tmp, args.warm_wal) as (base, _):
            asyncio.run(create_databases(base, list(names.values())))
            env = {k: v for k, v in os.environ.items() if not k.startswith("LOAN_AUCTION_")}
            env.pop("DATABASE_URL", None)
            env.update(LOAN_AUCTION_ADMIN_KEY=admin, LOAN_AUCTION_RATE_LIMIT_PER_S="0",
                       LOAN_AUCTION_RATE_LIMIT_UNAUTHENTICATED_PER_S="0",
                       LOAN_AUCTION_SECRETS_KEY=Fernet.generate_key().decode(),
                       LOAN_AUCTION_ACCESS_LOG="false",
                       LOAN_AUCTION_MAX_LISTING_AMOUNT=str(LISTING_AMOUNT),
                       LOAN_AUCTION_DATA_DIR=str(tmp / "service-data"))
            for name, db in names.items():
                port = free_port()
                services[name] = spawn(name, [*serve_command(name), "--host", HOST, "--port",
                                              str(port)],
                                       {**env, "DATABASE_URL": database_url(base, db)}, tmp, port)
            port = free_port()
            services["trivial"] = spawn("trivial", [sys.executable, str(ROOT / "bench" /
                                        "trivial_app.py"), "--host", HOST, "--port", str(port)],
                                        env, tmp, port)
            setup = asyncio.run(prepare(services, admin, counts))
            fake = [str(uuid.uuid4())]
            results["trivial"] = phase("trivial FastAPI", services["trivial"], fake, "none", args)
            for count in counts:
                for name in ("durable", "journal_off"):
                    ids, key = setup[name]["listings"][count], setup[name]["key"]
                    results[f"{name} L={count}"] = phase(
                        f"{name.replace('_', ' ')} L={count}", services[name], ids, key, args)
            for service in services.values():
                stop(service)
            asyncio.run(drop_databases(base, list(names.values())))
    finally:
        for service in services.values():
            stop(service)
        shutil.rmtree(tmp, ignore_errors=True)
    trivial = results["trivial"]["ok_per_s"]
    for count in counts:
        durable = results[f"durable L={count}"]["ok_per_s"]
        off = results[f"journal_off L={count}"]["ok_per_s"]
        print(f"listings={count}: durable/trivial {durable / trivial:.3f},"
              f" durable/journal-off {durable / off:.3f}")
    print(json.dumps({"results": results, "loadavg_before": load_before,
                      "loadavg_after": os.getloadavg(), "connections": args.connections,
                      "seconds": args.seconds, "warmup_s": args.warmup,
                      "warm_wal_mib": args.warm_wal}))


if __name__ == "__main__":
    main()
