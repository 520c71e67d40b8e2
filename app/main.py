"""The application factory and its lifespan: open the pool, migrate, rebuild the books, serve."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app import database
from app.accounts.service import Accounts
from app.accounts.store import AccountStore
from app.api import (
    accounts,
    bids,
    events,
    health,
    keys,
    listings,
    loans,
    problems,
    standing_orders,
    webhooks,
)
from app.api.bids import BID_PATH
from app.api.deps import Services
from app.api.lean import FastLane
from app.auth import Keys
from app.journal import BatchStats, Entry, JournalWriter
from app.market import Market
from app.metrics import Metrics
from app.middleware import EdgeMiddleware
from app.policy import policy_json
from app.queries import Queries
from app.ratelimit import RateLimiter
from app.scheduler import run_deadlines, run_housekeeping
from app.settings import Settings
from app.standing_orders.service import StandingOrders
from app.standing_orders.store import StandingOrderStore
from app.store import Store
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.service import Webhooks
from app.webhooks.store import WebhookStore
from matching import GradePolicy
from matching.rules import Grade

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
    app.state.policies = settings.grade_policies()  # a bad policy file stops the start here
    problems.install(app)
    for module in (listings, bids, accounts, standing_orders, loans, events, keys, webhooks,
                   health):
        app.include_router(module.router)
    app.add_middleware(
        FastLane, route=_route(bids.router, "POST", BID_PATH), handlers=app.exception_handlers
    )
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
    async with database.postgres_uri(settings.database_url, settings.data_dir) as uri:
        pool = await database.create_pool(
            uri, settings.pool_min_size, settings.pool_max_size, settings.db_timeout_s
        )
        try:
            async with pool.acquire() as conn:
                await database.migrate(conn)
            async with _running(app, settings, Store(pool)):
                yield
        finally:
            await pool.close()


@contextlib.asynccontextmanager
async def _running(app: FastAPI, settings: Settings, store: Store) -> AsyncIterator[None]:
    metrics: Metrics = app.state.metrics
    policies: dict[Grade, GradePolicy] = app.state.policies
    market = Market(
        store, settings.market_rules(), settings.currency, metrics, policies,
        settings.max_lender_share_bps, settings.autobid_max_share_bps,
    )
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

    writer = JournalWriter(
        store.pool,
        settings.journal_max_batch,
        settings.journal_enabled,
        on_commit,
        market.on_journal_failure,
    )
    market.writer = writer
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    app.state.services = Services(
        market,
        Queries(market, store, settings.currency),
        Keys(store, admin_key),
        RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        Webhooks(dispatcher.store, dispatcher),
        Accounts(market, AccountStore(store.pool)),
        {
            "grades": policy_json(policies), "max_lender_share_bps": settings.max_lender_share_bps,
            "autobid_max_share_bps": settings.autobid_max_share_bps,
            "borrower_limit": settings.borrower_limit, "currency": settings.currency,
        },
        StandingOrders(market, StandingOrderStore(store.pool)),
    )
    tasks = [asyncio.create_task(writer.run(), name="journal")]
    try:
        await market.recover()
        tasks.append(asyncio.create_task(run_deadlines(market), name="deadlines"))
        tasks.append(asyncio.create_task(dispatcher.run(), name="webhooks"))
        tasks.append(
            asyncio.create_task(
                run_housekeeping(market, settings.idempotency_ttl_s), name="housekeeping"
            )
        )
        gc.freeze()  # startup objects (modules, routes, rebuilt books) leave the GC's scans
        gc.set_threshold(20_000, 20, 20)  # per-request garbage dies young; collect it less often
        log.info("ready", extra={"open_listings": len(market.engine.open_listing_ids())})
        yield
    finally:
        market.writable = False  # stop taking writes, then flush what was acknowledged-pending
        await asyncio.wait_for(writer.flushed(), timeout=settings.db_timeout_s * 2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
