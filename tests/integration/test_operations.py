"""Liveness, readiness and Prometheus metrics: no key needed."""

from uuid import UUID

import asyncpg
import httpx
import pytest

from tests.integration.conftest import running_service
from tests.integration.helpers import open_listing, place_bid


async def test_healthz_and_readyz_answer_200_without_a_key(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_metrics_count_accepted_bids_in_prometheus_text(client: httpx.AsyncClient) -> None:
    listing = await open_listing(client)
    await place_bid(client, listing["id"], 50_000, 1500)
    await place_bid(client, listing["id"], 50_000, 1400)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert "loan_auction_bids_accepted_total 2.0" in lines
    assert "loan_auction_listings_opened_total 1.0" in lines
    assert any(line.startswith("loan_auction_http_requests_total{") for line in lines)


async def test_no_setting_makes_the_service_acknowledge_writes_it_does_not_store(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal-off benchmark baseline lives in bench/, not in the service's settings."""
    monkeypatch.setenv("LOAN_AUCTION_JOURNAL_ENABLED", "false")
    async with running_service(database_url) as (_, client):
        listing = await open_listing(client)
        bid = await place_bid(client, listing["id"], 50_000, 1500)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM bids WHERE id = $1", UUID(bid["id"])) == 1
    finally:
        await conn.close()
