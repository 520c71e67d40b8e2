"""The application factory and its lifespan: open the pool, migrate, then the standby loop:
take the writer fence, rebuild the books, serve (or wait as a standby while another writes)."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app import database
from app.api import bids, events, health, keys, listings, loans, problems, webhooks
from app.api.bids import BID_PATH
from app.api.deps import Services
from app.api.lean import FastLane
from app.auth import Keys
from app.fence.fence import Fence, FenceLost, new_instance_id
from app.fence.guard import StandbyGuard
from app.fence.role import Role
from app.fence.store import application_name
from app.fence.supervisor import Supervisor, supervised
from app.journal import BatchStats, Entry, JournalWriter
from app.market import Market
from app.metrics import Metrics
from app.middleware import EdgeMiddleware
from app.queries import Queries
from app.ratelimit import RateLimiter
from app.scheduler import run_deadlines, run_housekeeping
from app.settings import Settings
from app.store import Store
from app.tasks import cancel_and_wait
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.service import Webhooks
from app.webhooks.store import WebhookStore

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()
    app = FastAPI(
        title="Loan auction engine",
        version="1.0.0",
        description="Borrowers post listings, lenders bid rates, the cheapest bids fund the loan.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.role = Role()
    problems.install(app)
    for module in (listings, bids, loans, events, keys, webhooks, health):
        app.include_router(module.router)
    app.add_middleware(
        FastLane, route=_route(bids.router, "POST", BID_PATH), handlers=app.exception_handlers
    )
    app.add_middleware(StandbyGuard, role=app.state.role)
    app.add_middleware(EdgeMiddleware, max_body=settings.max_body_bytes, metrics=metrics)
    return app


def _route(router: APIRouter, method: str, path: str) -> APIRoute:
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"{method} {path} is not routed")


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    instance = new_instance_id()
    async with database.postgres_uri(settings.database_url, settings.data_dir) as uri:
        pool = await database.create_pool(
            uri, settings.pool_min_size, settings.pool_max_size, settings.db_timeout_s,
            application_name(instance),
        )
        try:
            async with pool.acquire() as conn:
                applied = await database.migrate(conn)
            log.info("migrations", extra={"applied": applied, "instance": instance})
            fence = Fence(uri, instance, settings.fence_timings(), app.state.role)
            store = Store(pool)
            supervisor = Supervisor(
                fence, app.state.role, lambda: _running(app, settings, store, fence)
            )
            async with supervised(supervisor):
                yield
        finally:
            await pool.close()


@contextlib.asynccontextmanager
async def _running(
    app: FastAPI, settings: Settings, store: Store, fence: Fence
) -> AsyncIterator[None]:
    """One term as the writer: rebuild the books, then run the journal and background writers."""
    metrics: Metrics = app.state.metrics
    market = Market(store, settings.market_rules(), settings.currency, metrics)
    dispatcher = Dispatcher(
        WebhookStore(store.pool),
        metrics,
        settings.retry_schedule(),
        settings.webhook_timeout_s,
        settings.webhook_poll_s,
    )

    def on_commit(entry: Entry, stats: BatchStats) -> None:
        market.on_commit(entry, stats)
        if entry.events:
            dispatcher.nudge()

    async def on_failure(error: BaseException) -> None:
        if fence.held:  # an outage or a failed commit: rebuild from Postgres and go on
            await market.on_journal_failure(error)
        else:  # fenced out: another instance writes now, nothing to rebuild here
            market.step_down()

    writer = JournalWriter(
        store.pool,
        settings.journal_max_batch,
        settings.journal_enabled,
        on_commit,
        on_failure,
        fence=fence,
    )
    market.writer = writer
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    app.state.services = Services(
        market,
        Queries(market, store, settings.currency),
        Keys(store, admin_key),
        RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        Webhooks(dispatcher.store, dispatcher),
    )
    journal = asyncio.create_task(writer.run(), name="journal")
    background: list[asyncio.Task[None]] = []
    try:
        await market.recover()
        background.append(asyncio.create_task(run_deadlines(market), name="deadlines"))
        background.append(asyncio.create_task(dispatcher.run(), name="webhooks"))
        background.append(
            asyncio.create_task(
                run_housekeeping(market, fence, settings.idempotency_ttl_s), name="housekeeping"
            )
        )
        gc.freeze()  # startup objects (modules, routes, rebuilt books) leave the GC's scans
        gc.set_threshold(20_000, 20, 20)  # per-request garbage dies young; collect it less often
        metrics.set_writer(True)
        log.info("ready", extra={"open_listings": len(market.engine.open_listing_ids())})
        yield
    finally:
        metrics.set_writer(False)
        await _stop_writing(settings, market, writer, fence, journal, background)


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
