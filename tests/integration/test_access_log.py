"""One access line per request: method, route template, status, duration, request id."""

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.logs import JsonFormatter
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import bid_body, open_listing

#: The bid route behaves the same with the fast lane on and off.
pytestmark = pytest.mark.usefixtures("either_lane")


class _Lines(logging.Handler):
    """Formats as the service's stderr handler does, at emit time (the request id is live)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def access() -> Iterator[_Lines]:
    logger = logging.getLogger("app.access")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_each_request_logs_one_line_with_its_route_template_and_request_id(
    client: httpx.AsyncClient, access: _Lines
) -> None:
    listing = await open_listing(client)
    path = f"/v1/listings/{listing['id']}/bids"
    traced = {**ADMIN, "X-Request-ID": "bid-1"}
    assert (await client.post(path, headers=traced, json=bid_body(10_000, 1000))).status_code == 201
    await client.get("/nowhere", headers={"X-Request-ID": "lost-1"})
    await client.post("/v1/listings", headers={**ADMIN, "X-Request-ID": "big-1"},
                      content=b" " * (65 * 1024))
    seen = [(e["request_id"], e["method"], e["route"], e["status"]) for e in access.lines]
    assert seen[1:] == [
        ("bid-1", "POST", "/v1/listings/{listing_id}/bids", 201),
        ("lost-1", "GET", "unmatched", 404),
        ("big-1", "POST", "unmatched", 413),
    ]
    assert seen[0][1:] == ("POST", "/v1/listings", 201)
    assert all(isinstance(e["duration_ms"], float) and e["duration_ms"] >= 0 for e in access.lines)
    assert {e["msg"] for e in access.lines} == {"request"}


async def test_the_access_log_can_be_switched_off(database_url: str, access: _Lines) -> None:
    async with running_service(database_url, access_log=False) as (_, client):
        await open_listing(client)
        assert (await client.get("/healthz")).status_code == 200
    assert access.lines == []
