"""Prometheus metrics, one registry per app (nothing at import time). Low-cardinality labels."""

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from app.journal import BatchStats
from matching import Engine, Event, ListingCancelled, ListingFailed, ListingFunded, ListingOpened

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.http_requests = Counter(
            "loan_auction_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "loan_auction_http_request_duration_seconds", "HTTP latency", ["method", "route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.bids_accepted = Counter("loan_auction_bids_accepted", "Bids accepted", registry=r)
        self.bids_outbid = Counter("loan_auction_bids_outbid", "Bids pushed out", registry=r)
        self.bids_rejected = Counter(
            "loan_auction_bids_rejected", "Bids rejected by the engine", ["code"], registry=r
        )
        self.listings_closed = Counter(
            "loan_auction_listings_closed", "Listings resolved", ["outcome"], registry=r
        )
        self.listings_opened = Counter(
            "loan_auction_listings_opened", "Listings opened", registry=r
        )
        self.open_listings = Gauge("loan_auction_open_listings", "Open listings", registry=r)
        self.journal_batch = Histogram(
            "loan_auction_journal_batch_entries",
            "Entries per group commit",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.journal_batches = Counter(
            "loan_auction_journal_batches", "Group commits, by connection",
            ["connection"], registry=r,
        )
        self.journal_commit = Histogram(
            "loan_auction_journal_commit_seconds",
            "Group commit latency",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "loan_auction_webhook_attempts", "Webhook delivery attempts", ["result"], registry=r
        )
        self.webhook_lag = Histogram(
            "loan_auction_webhook_lag_seconds",
            "Event creation to successful delivery",
            buckets=(0.1, 0.5, 1, 5, 30, 300, 1800, 7200, 36000),
            registry=r,
        )
        self.writer = Gauge(
            "loan_auction_writer", "1 while this instance is the writer, 0 as a standby", registry=r
        )
        self.writer_terms = Counter(
            "loan_auction_writer_terms", "Times this instance became the writer", registry=r
        )

    def bid_accepted(self, outbid: int) -> None:
        self.bids_accepted.inc()
        if outbid:
            self.bids_outbid.inc(outbid)

    def bid_rejected(self, code: str) -> None:
        self.bids_rejected.labels(code).inc()

    def event_decided(self, event: Event) -> None:
        if isinstance(event, ListingOpened):
            self.listings_opened.inc()
            self.open_listings.inc()
        elif isinstance(event, ListingFunded | ListingFailed | ListingCancelled):
            outcome = {ListingFunded: "funded", ListingFailed: "failed"}.get(
                type(event), "cancelled"
            )
            self.listings_closed.labels(outcome).inc()
            self.open_listings.dec()

    def set_book_gauges(self, engine: Engine) -> None:
        self.open_listings.set(len(engine.open_listing_ids()))

    def set_writer(self, writing: bool) -> None:
        self.writer.set(int(writing))
        if writing:
            self.writer_terms.inc()

    def journal_committed(self, stats: BatchStats) -> None:
        self.journal_batch.observe(stats.entries)
        self.journal_commit.observe(stats.seconds)
        self.journal_batches.labels("lane" if stats.on_lane else "asyncpg").inc()



def serve_on_own_port(metrics: Metrics, host: str, port: int | None) -> Callable[[], None]:
    """With a port, serve the registry there without a key (the library's own small server, in a
    thread; the operator keeps that port on a private interface). Returns how to stop it."""
    if port is None:
        return lambda: None
    server, thread = start_http_server(port, host, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
