"""By default webhooks never go inward: refused at creation for a literal address, and at
delivery for a name that resolves inward, before any connection is made."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import httpx
import pytest

from app.webhooks.client import GuardedResolver
from app.webhooks.egress import EgressRefused
from tests.integration.conftest import ADMIN, running_service
from tests.integration.helpers import problem
from tests.integration.test_webhooks import bid, open_listing, reaches
from tests.unit.test_egress import FixedResolver

REFUSED = [
    "http://127.0.0.1:8080/hooks", "http://[::1]/hooks", "https://10.0.0.5/hooks",
    "http://169.254.169.254/latest/meta-data/", "http://0x7f.1/hooks", "http://0.0.0.0/",
    "http://[::ffff:192.168.0.1]/hooks",
]


async def test_a_literal_inward_address_is_refused_at_creation_with_422(
    client: httpx.AsyncClient,
) -> None:
    for url in REFUSED:
        response = await client.post("/v1/webhook-endpoints", json={"url": url}, headers=ADMIN)
        body = problem(response, 422, "webhook_url_not_allowed")
        assert body["errors"][0]["field"] == "url", url
    assert (await client.get("/v1/webhook-endpoints", headers=ADMIN)).json()["data"] == []
    public = await client.post(
        "/v1/webhook-endpoints", json={"url": "https://93.184.215.14/hooks"}, headers=ADMIN
    )
    assert public.status_code == 201, public.text


async def test_private_targets_may_be_allowed_for_development_but_never_metadata(
    database_url: str,
) -> None:
    async with running_service(database_url, webhook_allow_private=True) as (_, client):
        allowed = await client.post(
            "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:8080/hooks"}, headers=ADMIN
        )
        assert allowed.status_code == 201, allowed.text
        metadata = await client.post(
            "/v1/webhook-endpoints", json={"url": "http://169.254.169.254/"}, headers=ADMIN
        )
        problem(metadata, 422, "webhook_url_not_allowed")


@asynccontextmanager
async def counting_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A TCP server on 127.0.0.1 that notes each connection's request head, answers 204."""
    accepted: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            accepted.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            accepted.append(b"")
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, accepted
    finally:
        server.close()
        await server.wait_closed()


async def test_a_name_that_resolves_inward_is_refused_at_delivery_without_connecting(
    database_url: str,
) -> None:
    async with (
        counting_server() as (port, accepted),
        running_service(
            database_url, webhook_retry_schedule="0.2", webhook_timeout_s=1.0, webhook_poll_s=0.1
        ) as (_, client),
    ):
        created = await client.post(
            "/v1/webhook-endpoints",
            json={"url": f"http://localhost:{port}/hooks", "event_types": ["bid.placed"]},
            headers=ADMIN,
        )
        assert created.status_code == 201, "a DNS name is checked when delivering"
        endpoint = created.json()["id"]
        await bid(client, await open_listing(client, duration_s=600), 5_000, 1000)
        delivery = await reaches(client, endpoint, "failed")
    errors = [a["error"] for a in delivery["attempt_log"]]
    assert len(errors) == 2 and all(e.startswith("refused: private address") for e in errors)
    assert "(localhost)" in errors[0]
    assert accepted == [], "no connection was made"


@pytest.mark.parametrize("allow_private", [True, False])
async def test_the_connection_goes_to_the_checked_address_with_the_urls_host_name(
    allow_private: bool,
) -> None:
    """A name (resolved here to 127.0.0.1) reaches that address with its own Host header when
    private targets are allowed, and no connection at all when they are not."""
    async with counting_server() as (port, accepted):
        resolver = GuardedResolver(allow_private)
        resolver._inner = FixedResolver("127.0.0.1")
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"http://hooks.test:{port}/x"
            if allow_private:
                async with session.post(url, data=b"{}") as response:
                    assert response.status == 204
                assert len(accepted) == 1
                assert f"Host: hooks.test:{port}".encode() in accepted[0]
            else:
                with pytest.raises(aiohttp.ClientConnectorDNSError) as raised:
                    await session.post(url, data=b"{}")
                assert isinstance(raised.value.os_error, EgressRefused)
                assert accepted == []
