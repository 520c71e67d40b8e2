"""`loan-auction`: serve, migrate, keys create, bench."""

import argparse
import asyncio
import logging
import runpy
import secrets
import sys
from pathlib import Path

from pydantic import SecretStr

from app.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="loan-auction", description="Loan auction engine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    sub.add_parser("migrate", help="apply database migrations")
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="mint a key (printed once)")
    create.add_argument("--role", choices=["admin", "borrower", "lender"], required=True)
    create.add_argument("--subject", required=True)
    sub.add_parser(
        "bench", help="bid-burst benchmark; options go to bench/burst.py", add_help=False
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        _bench(argv[1:])
        return
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        _serve(settings, args.host, args.port)
    elif args.command == "migrate":
        print("applied:", ", ".join(asyncio.run(_migrate(settings))) or "nothing")
    else:
        print(asyncio.run(_create_key(settings, args.role, args.subject)))


def _bench(args: list[str]) -> None:
    script = Path(__file__).resolve().parent.parent / "bench" / "burst.py"
    if not script.is_file():
        script = Path.cwd() / "bench" / "burst.py"
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from app import logs
    from app.main import create_app

    logs.configure()
    if settings.admin_key is None:
        key = "la_admin_" + secrets.token_urlsafe(24)
        settings = settings.model_copy(update={"admin_key": SecretStr(key)})
        print(  # stdout: stderr carries only JSON log lines
            f"admin key for this run (set LOAN_AUCTION_ADMIN_KEY to choose one): {key}",
            flush=True,
        )
    host, port = host or settings.host, port or settings.port
    logging.getLogger("app").info(
        "loan-auction starting", extra={"url": f"http://{host}:{port}", "docs": "/docs"}
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


async def _migrate(settings: Settings) -> list[str]:
    from app import database

    async with database.postgres_uri(settings.database_url, settings.data_dir) as uri:
        pool = await database.create_pool(uri, 1, 1, settings.db_timeout_s)
        try:
            async with pool.acquire() as conn:
                return await database.migrate(conn)
        finally:
            await pool.close()


async def _create_key(settings: Settings, role: str, subject: str) -> str:
    from app import database
    from app.auth import Keys
    from app.store import Store

    async with database.postgres_uri(settings.database_url, settings.data_dir) as uri:
        pool = await database.create_pool(uri, 1, 1, settings.db_timeout_s)
        try:
            async with pool.acquire() as conn:
                await database.migrate(conn)
            minted = await Keys(Store(pool), None).mint(role, subject)  # type: ignore[arg-type]
            return minted.key
        finally:
            await pool.close()


if __name__ == "__main__":
    main()
