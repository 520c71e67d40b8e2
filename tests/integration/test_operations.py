"""Liveness and readiness need no key; Prometheus metrics need one, unless on their own port."""

import socket
from uuid import UUID

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from tests.integration.conftest import ADMIN, KeyMaker, running_service
from tests.integration.helpers import open_listing, place_bid, problem

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")

METRICS_KEY = "scrape-" + "m" * 32


async def test_healthz_and_readyz_answer_200_without_a_key(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_metrics_count_accepted_bids_in_prometheus_text(client: httpx.AsyncClient) -> None:
    listing = await open_listing(client)
    await place_bid(client, listing["id"], 50_000, 1500)
    await place_bid(client, listing["id"], 50_000, 1400)
    response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert "loan_auction_bids_accepted_total 2.0" in lines
    route = 'method="POST",route="/v1/listings/{listing_id}/bids"'
    assert f'loan_auction_http_requests_total{{{route},status="201"}} 2.0' in lines
    assert f'loan_auction_http_request_duration_seconds_count{{{route}}} 2.0' in lines
    assert "loan_auction_listings_opened_total 1.0" in lines
    assert any(line.startswith("loan_auction_http_requests_total{") for line in lines)


async def test_metrics_on_the_api_port_need_the_metrics_key_or_an_admin_key(
    database_url: str,
) -> None:
    async with running_service(database_url, metrics_key=SecretStr(METRICS_KEY)) as (_, client):
        problem(await client.get("/metrics"), 401, "unauthorized")
        problem(await client.get("/metrics", headers={"Authorization": "Bearer nope"}),
                401, "unauthorized")
        minted = await client.post(
            "/v1/api-keys", headers=ADMIN, json={"role": "lender", "subject": "lena"}
        )
        lena = {"Authorization": f"Bearer {minted.json()['key']}"}
        problem(await client.get("/metrics", headers=lena), 403, "forbidden_role")
        scraper = {"Authorization": f"Bearer {METRICS_KEY}"}
        for headers in (scraper, ADMIN):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 200, response.text
            assert "loan_auction_bids_accepted_total" in response.text


async def test_metrics_need_a_key_by_default(client: httpx.AsyncClient, make_key: KeyMaker) -> None:
    problem(await client.get("/metrics"), 401, "unauthorized")
    problem(await client.get("/metrics", headers=await make_key("borrower", "bob")),
            403, "forbidden_role")


async def test_metrics_are_served_without_a_key_on_their_own_port(database_url: str) -> None:
    port = _free_port()
    async with running_service(database_url, metrics_port=port) as (_, client):
        await open_listing(client)
        async with httpx.AsyncClient(timeout=5.0) as plain:
            response = await plain.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert "loan_auction_listings_opened_total 1.0" in response.text.splitlines()
        problem(await client.get("/metrics"), 401, "unauthorized")
    async with httpx.AsyncClient(timeout=5.0) as plain:
        with pytest.raises(httpx.TransportError):  # stopped with the service
            await plain.get(f"http://127.0.0.1:{port}/metrics")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
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
