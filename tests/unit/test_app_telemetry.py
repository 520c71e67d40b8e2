"""FastAPI's own OpenTelemetry hooks stay off: a request does not look up OpenTelemetry's global
providers (FastAPI's default asks for three, the environment included, on every request)."""

from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import _logs, metrics, trace

from app.main import create_app
from app.settings import Settings

#: The global providers FastAPI asks for, one per signal (tracing, metrics, logs): each must stay
#: unasked, not only the first (FastAPI stops at the first signal that is on and configured).
_PROVIDERS: tuple[tuple[ModuleType, str], ...] = (
    (trace, "get_tracer_provider"),
    (metrics, "get_meter_provider"),
    (_logs, "get_logger_provider"),
)


async def _lookups(app: FastAPI) -> Counter[str]:
    """Provider lookups, by getter, while `app` answers one request (no lifespan: nothing is
    started)."""
    calls: Counter[str] = Counter()

    def counting(name: str, looked_up: Callable[[], Any]) -> Callable[[], Any]:
        def counted() -> Any:
            calls[name] += 1
            return looked_up()

        return counted

    with pytest.MonkeyPatch.context() as patch:
        for module, name in _PROVIDERS:
            patch.setattr(module, name, counting(name, getattr(module, name)))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.get("/no-such-route")
    return calls


async def test_a_request_does_not_ask_opentelemetry_for_its_providers() -> None:
    by_default = await _lookups(FastAPI())  # what FastAPI does by default: all three
    assert set(by_default) == {name for _, name in _PROVIDERS}
    assert await _lookups(create_app(Settings())) == Counter()
