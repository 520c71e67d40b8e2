"""Starting and stopping the live view with the service."""

import logging
import socket
from collections.abc import Iterator

import asyncpg
import uvicorn
from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.live.budget import Budget
from app.live.hub import Hub
from app.live.service import Live
from app.live.sse import CutOffFilter
from app.live.store import LiveStore
from app.market import Market
from app.metrics import Metrics
from app.settings import Settings

_UVICORN = "uvicorn.error"


async def start(app: FastAPI, settings: Settings, pool: asyncpg.Pool, market: Market) -> Hub:
    """Before the journal writer commits anything, so the hub's history has no hole."""
    hub = Hub(
        settings.live_flush_s,
        settings.live_buffer_events,
        settings.live_history_events,
        settings.live_heartbeat_s,
        Budget(settings.live_send_share),
    )
    live = Live(hub, LiveStore(pool), market)
    await live.start()
    metrics: Metrics = app.state.metrics
    app.state.live_collector = _Collector(hub)
    metrics.registry.register(app.state.live_collector)
    app.state.live_filter = CutOffFilter()
    logging.getLogger(_UVICORN).addFilter(app.state.live_filter)
    app.state.live = live
    return hub


def end_streams(app: FastAPI) -> None:
    """The server begins to stop: end the streams now, or they would hold it up (uvicorn waits
    for open responses before it runs the lifespan's shutdown)."""
    live: Live | None = getattr(app.state, "live", None)
    if live is not None:
        live.hub.close()


class Server(uvicorn.Server):
    """uvicorn's server, ending the event streams first when it stops: it waits for open
    responses before it runs the lifespan's shutdown, and a stream never finishes by itself."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if isinstance(self.config.app, FastAPI):
            end_streams(self.config.app)
        await super().shutdown(sockets)


def stop(app: FastAPI) -> None:
    end_streams(app)
    metrics: Metrics = app.state.metrics
    metrics.registry.unregister(app.state.live_collector)
    logging.getLogger(_UVICORN).removeFilter(app.state.live_filter)
    del app.state.live


class _Collector(Collector):
    """Scrape-time figures: open streams, streams dropped for falling behind."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "loan_auction_live_streams", "Open event streams", value=self.hub.subscribers
        )
        yield CounterMetricFamily(
            "loan_auction_live_streams_dropped",
            "Event streams closed for falling behind",
            value=self.hub.dropped,
        )
