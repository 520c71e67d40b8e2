"""SIGTERM with event streams open: they end cleanly and the service exits at once.

uvicorn waits for open responses before it shuts the app down (10 s at most, then it cancels
them and logs an error, which the `service` fixture reports), so a stream that did not end when
the service is told to stop would show up here without any timing in the test.
"""

import asyncio

import httpx

from tests.e2e.conftest import ADMIN, ServiceProcess


async def read_to_the_end(base_url: str, path: str) -> bytes:
    """The whole response; raises if the server cut the connection before the chunked end."""
    async with (
        httpx.AsyncClient(base_url=base_url, headers=ADMIN, timeout=30) as client,
        client.stream("GET", path) as response,
    ):
        assert response.status_code == 200
        return b"".join([chunk async for chunk in response.aiter_raw()])


async def test_sigterm_ends_open_streams_and_the_service_exits_cleanly(
    service: ServiceProcess,
) -> None:
    async with service.client() as client:
        response = await client.post("/v1/listings", json={
            "borrower_id": "bob", "amount": 300_000, "term_months": 12, "max_rate_bps": 2000,
            "grade": "B", "duration_s": 600,
        })
        assert response.status_code == 201, response.text
        paths = [f"/v1/listings/{response.json()['id']}/stream", "/v1/events/stream"]
        readers = [asyncio.create_task(read_to_the_end(service.base_url, p)) for p in paths]
        async with asyncio.timeout(10):
            while "loan_auction_live_streams 2.0" not in (await client.get("/metrics")).text:
                await asyncio.sleep(0.05)
    assert await service.stop() in (0, -15)  # uvicorn re-raises SIGTERM when done
    listing_stream, all_events = await asyncio.gather(*readers)
    assert b"event: listing.opened" in listing_stream
    assert all_events.startswith(b"retry:")
