"""FastAPI's own OpenTelemetry hooks stay off: a request does not look up OpenTelemetry's global
providers (FastAPI's default asks for three, the environment included, on every request)."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace

from app.main import create_app
from app.settings import Settings


async def _lookups(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> int:
    """Provider lookups while `app` answers one request (no lifespan: nothing is started)."""
    calls: list[None] = []
    looked_up: Callable[[], Any] = trace.get_tracer_provider

    def counted() -> Any:
        calls.append(None)
        return looked_up()

    monkeypatch.setattr(trace, "get_tracer_provider", counted)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.get("/no-such-route")
    return len(calls)


async def test_a_request_does_not_ask_opentelemetry_for_its_providers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await _lookups(FastAPI(), monkeypatch) > 0  # what FastAPI does by default
    assert await _lookups(create_app(Settings()), monkeypatch) == 0
