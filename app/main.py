"""The application factory and its lifespan: open the pool, migrate, then the standby loop:
take the writer fence, rebuild the books, serve (or wait as a standby while another writes)."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import asyncpg
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline

from app import database
from app.accounts.service import Accounts
from app.accounts.store import AccountStore
from app.api import (
    accounts,
    bids,
    events,
    health,
    keys,
    lean,
    listings,
    loans,
    problems,
    standing_orders,
    webhooks,
)
from app.api.bids import BID_PATH
from app.api.deps import Services
from app.audit import service as audit
from app.fence.fence import Fence, FenceLost, new_instance_id
from app.fence.guard import StandbyGuard
from app.fence.role import Role
from app.fence.store import application_name
from app.fence.supervisor import Supervisor, supervised
from app.journal import BatchStats, Entry, JournalWriter
from app.keys import admin
from app.keys.service import Keys, record_usage_every
from app.keys.store import KeyStore
from app.live import lifecycle as live_view
from app.live import routes as live_routes
from app.market import Market
from app.metrics import Metrics, serve_on_own_port
from app.middleware import Edge, EdgeMiddleware
from app.policy import policy_json
from app.queries import Queries
from app.ratelimit import RateLimiter
from app.recovery import collector_paused
from app.scheduler import run_deadlines, run_housekeeping, run_webhook_retention
from app.settings import Settings
from app.standing_orders.service import StandingOrders
from app.standing_orders.store import StandingOrderStore
from app.store import Store
from app.tasks import cancel_and_wait
from app.webhooks.sealing import check_configured as check_secrets_configured
from app.webhooks.service import start as start_webhooks
from matching import GradePolicy
from matching.rules import Grade

if TYPE_CHECKING:
    from app.journal.lane import AppendLane  # psycopg loads with the first lane

log = logging.getLogger(__name__)

#: FastAPI's own OpenTelemetry hooks, off: the service reports through /metrics and its logs,
#: and with them on every request asked OpenTelemetry for its three global providers (the
#: environment included), ~2.4 µs a request (BENCHMARKS.md), to find none set.
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    app = FastAPIOffline(  # /docs and /redoc load their scripts from this service, not a CDN
        title="Loan auction engine",
        version="1.0.0",
        description="Borrowers post listings, lenders bid rates, the cheapest bids fund the loan.",
        lifespan=_lifespan,
        telemetry=NO_OPENTELEMETRY,
    )
    check_secrets_configured(settings)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.policies = settings.grade_policies()  # a bad policy file stops the start here
    app.state.role = Role()
    problems.install(app)
    for module in (listings, bids, accounts, standing_orders, loans, events, keys, webhooks,
                   health):
        app.include_router(module.router)
    live_routes.install(app)
    edge = Edge(settings.max_body_bytes, metrics, settings.access_log)
    app.add_middleware(StandbyGuard, role=app.state.role)  # inside the edge: ids, logs, 413s
    app.add_middleware(EdgeMiddleware, edge=edge)
    if settings.bid_fast_lane:
        lean.install(app, BID_PATH, edge, bids.bid_reply)  # on top of the whole stack
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Migrate, then wait for the writer's fence (a standby until then); each term as the writer
    rebuilds the books and runs the writers (`_running`), until the process stops."""
    settings: Settings = app.state.settings
    instance = new_instance_id()
    async with database.postgres_uri(settings.database_url, settings.data_dir) as uri:
        pool = await database.create_pool(
            uri, settings.pool_min_size, settings.pool_max_size, settings.db_timeout_s,
            application_name=application_name(instance),
        )
        relay = await database.create_pool(  # the webhook dispatcher's: every write replayable
            uri, 1, 2, settings.db_timeout_s, {"synchronous_commit": "off"}, database.keep_session,
            application_name=application_name(instance),
        )
        stop_metrics = serve_on_own_port(
            app.state.metrics, settings.metrics_host, settings.metrics_port
        )
        try:
            async with pool.acquire() as conn:
                applied = await database.migrate(conn)
                await audit.backfill(conn)
            log.info("migrations", extra={"applied": applied, "instance": instance})
            fence = Fence(uri, instance, settings.fence_timings(), app.state.role)
            store = Store(pool)
            supervisor = Supervisor(
                fence, app.state.role, lambda: _running(app, settings, store, relay, fence)
            )
            async with supervised(supervisor):
                yield
        finally:
            stop_metrics()
            await relay.close()
            await pool.close()


@contextlib.asynccontextmanager
async def _running(
    app: FastAPI, settings: Settings, store: Store, relay: asyncpg.Pool, fence: Fence
) -> AsyncIterator[None]:
    """One term as the writer: rebuild the books, then run the journal and background writers."""
    metrics: Metrics = app.state.metrics
    policies: dict[Grade, GradePolicy] = app.state.policies
    market = Market(
        store, settings.market_rules(), settings.currency, metrics, policies,
        settings.max_lender_share_bps, settings.autobid_max_share_bps,
    )
    webhooks = await start_webhooks(settings, store.pool, relay, metrics)
    dispatcher = webhooks.dispatcher
    hub = await live_view.start(app, settings, store.pool, market)

    def on_commit(entry: Entry, stats: BatchStats) -> None:
        market.on_commit(entry, stats)
        if entry.events:
            dispatcher.nudge()
            hub.publish(entry.events)

    async def on_failure(error: BaseException) -> None:
        if fence.held:  # an outage or a failed commit: rebuild from Postgres and go on
            await market.on_journal_failure(error)
        else:  # fenced out: another instance writes now, nothing to rebuild here
            market.step_down()

    writer = JournalWriter(
        store.pool,
        settings.journal_max_batch,
        settings.journal_max_batch_rows,
        on_commit,
        on_failure,
        fence=fence,
        open_lane=_lane_opener(settings, fence),
        timeout_s=database.command_timeout_s(settings.db_timeout_s),  # as the pool's
    )
    market.writer = writer
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    admin.warn_if_short(admin_key)
    keys = Keys(KeyStore(store.pool), admin_key, _address_limiter(settings))
    app.state.services = Services(
        market,
        Queries(market, store, settings.currency),
        keys,
        RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        webhooks,
        market.idempotency,
        Accounts(market, AccountStore(store.pool)),
        {
            "grades": policy_json(policies), "max_lender_share_bps": settings.max_lender_share_bps,
            "autobid_max_share_bps": settings.autobid_max_share_bps,
            "borrower_limit": settings.borrower_limit, "currency": settings.currency,
        },
        StandingOrders(market, StandingOrderStore(store.pool)),
    )
    journal = asyncio.create_task(writer.run(), name="journal")
    background: list[asyncio.Task[None]] = []
    try:
        with collector_paused():  # the rebuilt books go to the frozen generation unscanned
            await market.recover()
            gc.freeze()  # startup objects (modules, routes, rebuilt books) leave the GC's scans
        retention = settings.webhook_retention_days * 86_400
        for name, work in (
            ("deadlines", run_deadlines(market)),
            ("webhooks", dispatcher.run()),
            ("housekeeping", run_housekeeping(market, fence, settings.idempotency_ttl_s)),
            ("key-usage", record_usage_every(keys)),
            ("webhook-retention", run_webhook_retention(webhooks.store, retention)),
        ):
            background.append(asyncio.create_task(work, name=name))
        gc.set_threshold(20_000, 20, 20)  # per-request garbage dies young; collect it less often
        metrics.set_writer(True)
        log.info("ready", extra={"open_listings": len(market.engine.open_listing_ids())})
        yield
    finally:
        live_view.stop(app)
        metrics.set_writer(False)
        await _stop_writing(settings, market, writer, fence, journal, background)
        with contextlib.suppress(Exception):  # best effort: last_used_at is to the minute anyway
            await asyncio.wait_for(keys.record_usage(), timeout=settings.db_timeout_s)


async def _stop_writing(
    settings: Settings, market: Market, writer: JournalWriter, fence: Fence,
    journal: "asyncio.Task[None]", background: "list[asyncio.Task[None]]",
) -> None:
    """A clean stop flushes what was acknowledged-pending; a writer that lost the fence fails
    it instead (503), and either way the background writers stop first."""
    market.step_down()
    gc.unfreeze()  # this term's books may sit in reference cycles: let a full collection free them
    await cancel_and_wait(background)
    if not fence.held:
        writer.close(FenceLost("this instance is no longer the writer"))
    try:
        await asyncio.wait_for(writer.flushed(), timeout=settings.db_timeout_s * 2)
    except TimeoutError:
        if fence.held:
            raise
        log.error("the journal batch in flight did not finish while stepping down")
    finally:
        await cancel_and_wait([journal])


def _lane_opener(settings: Settings, fence: Fence) -> "Callable[[], AppendLane] | None":
    """The journal's libpq lane, named like the pool's sessions so a takeover ends it too."""
    if not settings.journal_lane:
        return None

    def open_lane() -> "AppendLane":
        # Imported here, in the executor that opens the first lane: psycopg's import (~80 ms)
        # stays off the start, which recovery's figures measure (BENCHMARKS.md).
        from app.journal.lane import AppendLane

        return AppendLane.open(
            fence.uri, application_name(fence.instance), settings.db_timeout_s
        )

    return open_lane


def _address_limiter(settings: Settings) -> RateLimiter:
    return RateLimiter(
        settings.rate_limit_unauthenticated_per_s,
        settings.rate_limit_unauthenticated_burst,
        "too many requests without a valid key from this address",
    )
