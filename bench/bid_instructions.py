"""A fixed number of bids through the app as raw ASGI requests (the fast lane, the service, the
journal's Python), with the journal's Postgres statement answered in-process: the CPU work of a
bid less uvicorn's and asyncpg's, made for `valgrind --tool=callgrind`, whose instruction
counts repeat on a busy machine where timings do not.

    valgrind --tool=callgrind python bench/bid_instructions.py --bids-per-worker 20
    valgrind --tool=callgrind python bench/bid_instructions.py --bids-per-worker 60

Instructions per bid = the difference of the two totals over the difference of the bids
(64 workers: 2,560 bids); start-up and set-up cancel out. Embedded PostgreSQL (or
DATABASE_URL) serves the set-up: keys, deposits, one listing.
"""

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from burst import create_databases, database_url, drop_databases, postgres  # noqa: E402
from writes import ADMIN, LENDERS, _keys, _prepare, asgi_bid  # noqa: E402

from app.main import create_app  # noqa: E402  (after the path fix, as a script)
from app.settings import Settings  # noqa: E402

WORKERS = 64


class _Committed:
    """Stands in for the journal's connection: the batch statement finds the fence at once."""

    async def fetchval(self, *args: Any) -> int:
        return 1


async def _bids(app: Any, keys: list[str], listing_id: str, per_worker: int) -> None:
    path = f"/v1/listings/{listing_id}/bids"

    async def worker(c: int) -> None:
        auth = f"Bearer {keys[c % LENDERS]}".encode()
        for n in range(per_worker):
            body = b'{"amount":5000,"min_rate_bps":%d}' % (500 + (c * 7919 + n * 131) % 3000)
            status = await asgi_bid(app, path, auth, body, 40000 + c)
            if status != 201:
                raise RuntimeError(f"bid answered {status}")

    await asyncio.gather(*(worker(c) for c in range(WORKERS)))


async def _run(base: str, per_worker: int) -> None:
    name = f"la_instructions_{os.getpid()}"
    if not await create_databases(base, [name]):
        raise SystemExit("cannot create the bench database")
    try:
        settings = Settings(
            database_url=database_url(base, name), admin_key=SecretStr(ADMIN), rate_limit_per_s=0,
            rate_limit_unauthenticated_per_s=0, access_log=False,
            secrets_key=SecretStr("q5E1bGx0bS1rZXktZm9yLXRoZS10ZXN0LXN1aXRlISE="),
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                keys = await _keys(client)
                listing_id = (await _prepare(client, 1))[0]
            writer = app.state.services.market.writer
            await writer.flushed()
            real = await writer._connection()
            writer._conn = _Committed()
            try:
                await _bids(app, keys, listing_id, 2)  # warm-up: every cache filled
                await _bids(app, keys, listing_id, per_worker)
                await writer.flushed()
            finally:
                writer._conn = real
    finally:
        await drop_databases(base, [name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bids-per-worker", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="la-instructions-") as tmp, postgres(Path(tmp)) as (
        base, _pid,
    ):
        import uvloop

        uvloop.run(_run(base, args.bids_per_worker))
    print(f"{WORKERS * args.bids_per_worker} bids")


if __name__ == "__main__":
    main()
