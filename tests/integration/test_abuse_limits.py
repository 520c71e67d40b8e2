"""Abuse limits, on by default: per key, per client address without a valid key, and a bad key
answered from memory after its first lookup."""

import os
from typing import Any

import asyncpg
import httpx
import pytest

from app.settings import Settings
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import problem

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")


async def test_per_key_rate_limits_are_on_by_default(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("LOAN_AUCTION_")]:
        monkeypatch.delenv(name)
    defaults = Settings()
    assert defaults.rate_limit_per_s > 0 and defaults.rate_limit_burst > 0
    assert defaults.rate_limit_unauthenticated_per_s > 0
    assert defaults.rate_limit_unauthenticated_burst > 0
    async with running_service(database_url) as (_, client):
        for _ in range(20 * defaults.rate_limit_burst):  # far more than a second's worth
            response = await client.get("/v1/bids/none", headers=ADMIN)
            if response.status_code != 404:
                break
        problem(response, 429, "rate_limited")
        assert int(response.headers["Retry-After"]) >= 1
        assert (await client.get("/healthz")).status_code == 200, "operations are not limited"


async def test_requests_without_a_valid_key_are_limited_per_client_address(
    database_url: str,
) -> None:
    limits: dict[str, Any] = {
        "rate_limit_unauthenticated_per_s": 0.01, "rate_limit_unauthenticated_burst": 3,
    }
    async with running_service(database_url, **limits) as (app, client):
        fresh = [await _mint(client, f"lender-{n}") for n in range(5)]
        for headers in fresh:  # more first lookups than the burst: valid keys cost nothing
            assert (await client.get("/v1/listings", headers=headers)).status_code == 200
        lena = fresh[0]
        for headers in ({}, {"Authorization": "Bearer la_guess"}, {"Authorization": "Bearer x"}):
            problem(await client.get("/v1/listings", headers=headers), 401, "unauthorized")
        for headers in ({"Authorization": "Bearer la_guess"}, {}, {"Authorization": "Basic x"}):
            limited = problem(
                await client.get("/v1/listings", headers=headers), 429, "rate_limited"
            )
            assert "address" in limited["detail"]
        assert (await client.get("/v1/listings", headers=lena)).status_code == 200, (
            "a valid key from the same address is not held back"
        )
        assert (await client.get("/v1/listings", headers=ADMIN)).status_code == 200
        elsewhere = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
        async with httpx.AsyncClient(transport=elsewhere, base_url="http://test") as other:
            problem(await other.get("/v1/listings"), 401, "unauthorized")


async def test_a_bad_key_costs_one_database_lookup_not_one_per_request(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = 0
    fetchrow = asyncpg.Pool.fetchrow

    async def counted(pool: asyncpg.Pool, query: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal lookups
        lookups += "api_keys" in query
        return await fetchrow(pool, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Pool, "fetchrow", counted)
    for _ in range(5):
        problem(await client.get("/v1/listings", headers={"Authorization": "Bearer la_guess"}),
                401, "unauthorized")
    assert lookups == 1
    problem(await client.get("/v1/listings", headers={"Authorization": "Bearer la_other"}),
            401, "unauthorized")
    assert lookups == 2, "each new bad key is looked up once"


async def _mint(client: httpx.AsyncClient, subject: str) -> dict[str, str]:
    minted = await client.post(
        "/v1/api-keys", headers=ADMIN, json={"role": "lender", "subject": subject}
    )
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['key']}"}
