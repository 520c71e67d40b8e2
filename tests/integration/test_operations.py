"""Liveness, readiness and Prometheus metrics: no key needed."""

import httpx

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
