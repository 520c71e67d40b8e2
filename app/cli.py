"""`loan-auction`: serve, migrate, keys create, audit verify, secrets, bench."""

import argparse
import asyncio
import contextlib
import logging
import re
import runpy
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import SecretStr, ValidationError

from app.policy import PolicyError
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
    create.add_argument(
        "--create-database", action="store_true",
        help="without DATABASE_URL: make a new, empty embedded database if there is none",
    )
    audit = sub.add_parser("audit", help="the event log's hash chain").add_subparsers(
        dest="action", required=True
    )
    audit.add_parser("verify", help="recompute the chain from Postgres; exit 1 at a bad event")
    vault = sub.add_parser("secrets", help="webhook signing secrets at rest").add_subparsers(
        dest="action", required=True
    )
    vault.add_parser("generate-key", help="print a new key for LOAN_AUCTION_SECRETS_KEY")
    vault.add_parser("rotate", help="re-encrypt every webhook secret under the current key")
    sub.add_parser(
        "bench", help="bid-burst benchmark; options go to bench/burst.py", add_help=False
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        _bench(argv[1:])
        return
    args = parser.parse_args(argv)
    settings = _settings()
    if args.command == "serve":
        _serve(settings, args.host, args.port)
    elif args.command == "migrate":
        print("applied:", ", ".join(asyncio.run(_migrate(settings))) or "nothing")
    elif args.command == "audit":
        sys.exit(asyncio.run(_audit_verify(settings)))
    elif args.command == "secrets":
        _secrets(settings, args.action)
    else:
        print(_create_key(settings, args.role, args.subject, args.create_database))


def _settings() -> Settings:
    """The configuration, checked whole before anything starts: a bad value or policy file
    stops here with a message naming it (exit 2), not a traceback halfway up."""
    try:
        settings = Settings()
        settings.grade_policies()
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        sys.exit(f"loan-auction: configuration LOAN_AUCTION_{name.upper()}: {first['msg']}")
    except PolicyError as error:
        sys.exit(f"loan-auction: {error}")
    return settings


def _bench(args: list[str]) -> None:
    script = Path(__file__).resolve().parent.parent / "bench" / "burst.py"
    if not script.is_file():
        script = Path.cwd() / "bench" / "burst.py"
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from app import logs
    from app.keys import admin
    from app.live.lifecycle import Server
    from app.main import create_app
    from app.serving import OneWriteHttpTools

    logs.configure()
    if settings.admin_key is None:  # the key goes to an owner-only file, never to a log
        key, path, made = admin.key_file(settings.data_dir)
        settings = settings.model_copy(update={"admin_key": SecretStr(key)})
        print(
            f"admin key {'written to' if made else 'kept in'} {path} (readable by you only;"
            " set LOAN_AUCTION_ADMIN_KEY to choose one)",
            flush=True,
        )
    host, port = host or settings.host, port or settings.port
    logging.getLogger("app").info(
        "loan-auction starting", extra={"url": f"http://{host}:{port}", "docs": "/docs"}
    )
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        http=OneWriteHttpTools,  # a response's head and body in one write
    )
    Server(config).run()  # uvicorn's, ending the event streams first when it stops


async def _migrate(settings: Settings) -> list[str]:
    from app import database

    async with database.postgres_uri(settings.database_url, settings.data_dir) as uri:
        pool = await database.create_pool(uri, 1, 1, settings.db_timeout_s)
        try:
            async with pool.acquire() as conn:
                return await database.migrate(conn)
        finally:
            await pool.close()


def _create_key(settings: Settings, role: str, subject: str, create_database: bool) -> str:
    """The key on stdout; on stderr, which database it went into. Refuses to make a new embedded
    database unasked: run from the wrong folder, that is a key the running service never sees."""
    from app import database
    from app.errors import ApiError

    if settings.database_url:
        print(f"using the database at {_redacted(settings.database_url)}", file=sys.stderr)
    else:
        pgdata = database.embedded_pgdata(settings.data_dir)
        if not (pgdata / "PG_VERSION").exists() and not create_database:
            raise SystemExit(
                f"no database at {pgdata}: run this in the service's folder, or set"
                " LOAN_AUCTION_DATA_DIR or DATABASE_URL as the service has them"
                " (--create-database makes a new, empty one there)"
            )
        print(f"using the embedded database at {pgdata}", file=sys.stderr)
    try:
        return asyncio.run(_mint(settings, role, subject))
    except ApiError as error:
        raise SystemExit(f"refused ({error.code}): {error.detail}") from None


async def _mint(settings: Settings, role: str, subject: str) -> str:
    from app import database
    from app.keys.service import Keys
    from app.keys.store import KeyStore
    from app.ratelimit import RateLimiter

    async with database.postgres_uri(settings.database_url, settings.data_dir) as uri:
        pool = await database.create_pool(uri, 1, 1, settings.db_timeout_s)
        try:
            async with pool.acquire() as conn:
                await database.migrate(conn)
            keys = Keys(KeyStore(pool), None, RateLimiter(0, 0))
            minted = await keys.mint(role, subject)  # type: ignore[arg-type]  # argparse checked
            return minted.key
        finally:
            await pool.close()


def _redacted(url: str) -> str:
    """The URL without its password (in the authority or as a `password=` parameter)."""
    url = re.sub(r"([?&]password=)[^&]*", r"\1***", url)
    return re.sub(r"^(\w+://[^:/@]*):[^@/]+@", r"\1:***@", url)
@contextlib.asynccontextmanager
async def _existing_database(settings: Settings) -> AsyncIterator[str]:
    """DATABASE_URL, or the embedded database under the data folder if one is there already:
    a command that only reads never creates an empty database and reports on it."""
    from app import database

    pgdata = settings.data_dir.resolve() / "pg"
    if not settings.database_url and not pgdata.is_dir():
        raise SystemExit(
            f"error: DATABASE_URL is not set and there is no embedded database at {pgdata}"
            " (set DATABASE_URL, or LOAN_AUCTION_DATA_DIR to the service's data folder)"
        )
    async with database.postgres_uri(settings.database_url, settings.data_dir) as uri:
        yield uri


async def _audit_verify(settings: Settings) -> int:
    from app import database
    from app.audit import service

    async with _existing_database(settings) as uri:
        pool = await database.create_pool(uri, 1, 1, settings.db_timeout_s)
        try:
            async with pool.acquire() as conn:
                verdict = await service.verify(conn)
        finally:
            await pool.close()
    if verdict.bad_seq is not None:
        print(
            f"audit chain broken at seq {verdict.bad_seq}: stored hash {verdict.stored},"
            f" recomputed {verdict.computed} ({verdict.count} events before it verified)"
        )
        return 1
    print(f"audit chain ok: {verdict.count} events, head {verdict.head}")
    return 0


def _secrets(settings: Settings, action: str) -> None:
    from app.webhooks import sealing

    if action == "generate-key":
        print(sealing.generate_key())
        return
    sealing.check_configured(settings)
    count = asyncio.run(_rotate_secrets(settings))
    print(f"re-sealed the signing secrets of {count} webhook endpoint(s) under the current key")


async def _rotate_secrets(settings: Settings) -> int:
    from app import database
    from app.webhooks import sealing
    from app.webhooks.service import seal_secrets
    from app.webhooks.store import WebhookStore

    async with _existing_database(settings) as uri:
        pool = await database.create_pool(uri, 1, 1, settings.db_timeout_s)
        try:
            async with pool.acquire() as conn:
                await database.migrate(conn)  # as `keys create` does: the columns must exist
            return await seal_secrets(WebhookStore(pool), sealing.secret_box(settings), True)
        finally:
            await pool.close()


if __name__ == "__main__":
    main()
