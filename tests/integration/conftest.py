"""The service in-process (ASGI, real lifespan) over a fresh real database per test."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.main import create_app
from app.settings import Settings

ADMIN_KEY = "test-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
#: Tests of the auction rules bid as these lenders, funded through the API when the service
#: starts so that money never gets in their way; tests about money use other names.
FUNDED_LENDERS = (
    "lena", "l1", "l2", "l3", "l4", "chen", "dora", "otto", "mia", "abe", "zoe", "leo", "carl-7",
    "maxim",
)
FUNDS = 10**12
#: A fixed Fernet key for webhook secrets at rest (a real database needs one configured).
SECRETS_KEY = "q5E1bGx0bS1rZXktZm9yLXRoZS10ZXN0LXN1aXRlISE="


@asynccontextmanager
async def running_service(
    database_url: str, *, fund_lenders: bool = True, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    overrides = {"secrets_key": SecretStr(SECRETS_KEY), **overrides}
    settings = Settings(database_url=database_url, admin_key=SecretStr(ADMIN_KEY), **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            if fund_lenders:
                await fund(client, *FUNDED_LENDERS)
            yield app, client


async def fund(client: httpx.AsyncClient, *accounts: str, amount: int = FUNDS) -> None:
    """Deposit `amount` into each account, as the platform's payment side would."""
    for account in accounts:
        response = await client.post(
            f"/v1/accounts/{account}/deposits", headers=ADMIN,
            json={"amount": amount, "reference": "test funding"},
        )
        assert response.status_code == 201, response.text


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running_service(database_url) as running:
        yield running


@pytest.fixture(params=[True, False], ids=["fast_lane", "no_fast_lane"])
async def both_lanes(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service with the bid fast lane on, then off: a module whose `service` fixture returns
    this runs each of its tests both ways (the lane must change nothing but speed)."""
    async with running_service(database_url, bid_fast_lane=request.param) as running:
        yield running


@pytest.fixture(params=[True, False], ids=["fast_lane", "no_fast_lane"])
def either_lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every service a test starts has the bid fast lane on, then off (a module opts in with
    `pytestmark = pytest.mark.usefixtures("either_lane")`): the lane changes nothing but speed."""
    monkeypatch.setenv("LOAN_AUCTION_BID_FAST_LANE", "true" if request.param else "false")


@pytest.fixture
async def client(service: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return service[1]


KeyMaker = Callable[[str, str], Awaitable[dict[str, str]]]


@pytest.fixture
def make_key(client: httpx.AsyncClient) -> KeyMaker:
    """Mint an API key through the API; returns ready-to-send headers."""

    async def make(role: str, subject: str) -> dict[str, str]:
        response = await client.post(
            "/v1/api-keys", json={"role": role, "subject": subject}, headers=ADMIN
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}

    return make
