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


@asynccontextmanager
async def running_service(
    database_url: str, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(database_url=database_url, admin_key=SecretStr(ADMIN_KEY), **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


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
