"""Webhook delivery over real HTTP to a receiver on 127.0.0.1, signatures verified."""

import asyncio
import statistics
import time
from typing import Any

import asyncpg
import httpx

from tests.integration.conftest import ADMIN, running_service
from tests.integration.receiver import Receiver, free_port, serving
from tests.waiting import eventually

FAST: dict[str, Any] = {
    "webhook_retry_schedule": "0.2,0.2,0.2", "webhook_timeout_s": 1.0, "webhook_poll_s": 0.1,
    "webhook_allow_private": True,  # the receivers listen on 127.0.0.1
}


async def subscribe(
    client: httpx.AsyncClient, receiver: Receiver, types: list[str] | None = None
) -> str:
    body: dict[str, Any] = {"url": receiver.url, "description": "test"}
    if types:
        body["event_types"] = types
    response = await client.post("/v1/webhook-endpoints", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    receiver.secret = response.json()["secret"]
    assert receiver.secret.startswith("whsec_")
    return str(response.json()["id"])


async def open_listing(client: httpx.AsyncClient, amount: int = 100_000, **extra: Any) -> str:
    response = await client.post(
        "/v1/listings",
        headers=ADMIN,
        json={
            "borrower_id": "bob",
            "amount": amount,
            "term_months": 6,
            "max_rate_bps": 2000,
            "grade": "B",
            "duration_s": 1,
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def bid(client: httpx.AsyncClient, listing_id: str, amount: int, rate: int) -> None:
    response = await client.post(
        f"/v1/listings/{listing_id}/bids",
        headers=ADMIN,
        json={
            "amount": amount,
            "min_rate_bps": rate,
            "lender_id": "lena",
        },
    )
    assert response.status_code == 201, response.text


async def latest_delivery(client: httpx.AsyncClient, endpoint: str) -> dict[str, Any]:
    """The endpoint's newest delivery, or {} before there is one."""
    log = (await client.get(f"/v1/webhook-endpoints/{endpoint}/deliveries", headers=ADMIN)).json()
    return dict(log["data"][0]) if log["data"] else {}


async def reaches(client: httpx.AsyncClient, endpoint: str, status: str) -> dict[str, Any]:
    """Wait until the newest delivery has `status`; return it."""

    async def reached() -> bool:
        return (await latest_delivery(client, endpoint)).get("status") == status

    await eventually(reached)
    return await latest_delivery(client, endpoint)


async def test_funded_and_failed_listings_are_delivered_signed_and_retried_under_one_id(
    database_url: str,
) -> None:
    async with (
        serving(Receiver(fail_first=2)) as receiver,
        running_service(database_url, **FAST) as (_, client),
    ):
        await subscribe(client, receiver)
        funded = await open_listing(client)
        await bid(client, funded, 100_000, 1500)
        failed = await open_listing(client)
        await bid(client, failed, 50_000, 1500)
        await receiver.until_delivered(2)
        kinds = {d["type"]: d for d in receiver.delivered}
        assert set(kinds) == {"listing.funded", "listing.failed"}
        assert kinds["listing.funded"]["data"]["listing"]["id"] == funded
        assert kinds["listing.funded"]["data"]["loan"]["principal"] == 100_000
        assert kinds["listing.failed"]["data"]["listing"]["id"] == failed
        assert receiver.bad_signatures == 0
        assert sorted(receiver.attempts.values()) == [3, 3], "two 500s, then the 2xx, same id"
        assert set(receiver.attempts) == {d["id"] for d in receiver.delivered}
        logged = (await client.get("/v1/events", headers=ADMIN)).json()["data"]
        by_id = {e["id"]: e for e in logged}
        assert all(d == by_id[d["id"]] for d in receiver.delivered), "the event as logged, hash too"
        await asyncio.sleep(0.5)
        assert len(receiver.delivered) == 2, "no duplicate once delivered"


async def test_the_delivery_log_records_every_attempt(database_url: str) -> None:
    async with (
        serving(Receiver(fail_first=1)) as receiver,
        running_service(database_url, **FAST) as (_, client),
    ):
        endpoint = await subscribe(client, receiver)
        listing = await open_listing(client)
        await bid(client, listing, 100_000, 1500)

        delivery = await reaches(client, endpoint, "delivered")
        attempts = delivery["attempt_log"]
        assert [a["status_code"] for a in attempts] == [500, 204]
        assert delivery["attempts"] == 2


async def test_a_receiver_down_all_along_gets_the_event_after_redelivery(database_url: str) -> None:
    port = free_port()
    async with running_service(database_url, **FAST) as (_, client):
        receiver = Receiver()
        receiver.url = f"http://127.0.0.1:{port}/hooks"
        endpoint = await subscribe(client, receiver)
        listing = await open_listing(client)
        await bid(client, listing, 100_000, 1500)

        delivery = await reaches(client, endpoint, "failed")
        assert delivery["attempts"] == 4, "first try and three retries"
        event_id = delivery["event_id"]
        async with serving(receiver, port):
            response = await client.post(f"/v1/events/{event_id}/redeliver", headers=ADMIN)
            assert response.status_code == 202
            await receiver.until_delivered(1)
        assert receiver.delivered[0]["id"] == event_id


async def test_pending_retries_resume_after_a_restart(database_url: str) -> None:
    slow = {**FAST, "webhook_retry_schedule": "1.5,0.2"}
    async with serving(Receiver(fail_first=1)) as receiver:
        async with running_service(database_url, **slow) as (_, client):
            await subscribe(client, receiver)
            listing = await open_listing(client)
            await bid(client, listing, 100_000, 1500)

            async def first_attempt() -> bool:
                return sum(receiver.attempts.values()) == 1

            await eventually(first_attempt)
        assert not receiver.delivered, "stopped before the retry was due"
        async with running_service(database_url, **slow):
            await receiver.until_delivered(1)
        assert list(receiver.attempts.values()) == [2]


async def bid_latencies(client: httpx.AsyncClient, listing_id: str, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        await bid(client, listing_id, 5_000, 1000 + i)
        latencies.append(time.perf_counter() - started)
    return latencies


async def test_a_hanging_receiver_slows_neither_bidding_nor_other_endpoints(
    database_url: str,
) -> None:
    """Measured within the test: bids while a receiver holds every slot it may have are about
    as fast as bids before it was subscribed (a ratio, generous for a shared machine)."""
    settings = {**FAST, "webhook_timeout_s": 60.0, "webhook_concurrency": 4}
    async with (
        serving(Receiver(hang=True)) as hanging,
        serving(Receiver()) as healthy,
        running_service(database_url, **settings) as (_, client),
    ):
        listing = await open_listing(client, amount=10_000_000, duration_s=600)
        baseline = await bid_latencies(client, listing, 40)
        await subscribe(client, hanging, ["bid.placed"])
        await subscribe(client, healthy, ["bid.placed"])
        for _ in range(6):
            await bid(client, listing, 5_000, 1500)

        async def all_slots_hanging() -> bool:
            return hanging.in_flight == 4

        await eventually(all_slots_hanging)
        during = await bid_latencies(client, listing, 40)
        assert hanging.in_flight == 4, "the receiver hung all along"
        ratio = statistics.median(during) / statistics.median(baseline)
        assert ratio < 5, f"bids {ratio:.1f}x slower while a receiver hangs"
        await healthy.until_delivered(46)
        assert not hanging.delivered


async def test_410_gone_disables_the_endpoint(database_url: str) -> None:
    async with (
        serving(Receiver(status=410)) as receiver,
        running_service(database_url, **FAST) as (_, client),
    ):
        endpoint = await subscribe(client, receiver)
        listing = await open_listing(client)
        await bid(client, listing, 100_000, 1500)

        async def disabled() -> bool:
            body = (await client.get(f"/v1/webhook-endpoints/{endpoint}", headers=ADMIN)).json()
            return bool(body["status"] == "disabled")

        await eventually(disabled)
        assert sum(receiver.attempts.values()) == 1


async def test_only_http_urls_are_accepted_and_endpoints_can_be_deleted(
    client: httpx.AsyncClient,
) -> None:
    for url in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "not a url",
                "http://\x94", "http://exa mple.com/"):
        response = await client.post("/v1/webhook-endpoints", json={"url": url}, headers=ADMIN)
        assert response.status_code == 422, url
        assert response.json()["code"] == "validation_error"
    created = await client.post(
        "/v1/webhook-endpoints", json={"url": "https://example.com/hook"}, headers=ADMIN
    )
    assert created.status_code == 201
    body = created.json()
    assert body["event_types"] == ["listing.failed", "listing.funded"]
    listed = (await client.get("/v1/webhook-endpoints", headers=ADMIN)).json()["data"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert listed[0].get("secret") is None, "the secret is shown only at creation"
    assert (
        await client.delete(f"/v1/webhook-endpoints/{body['id']}", headers=ADMIN)
    ).status_code == 204
    assert (
        await client.get(f"/v1/webhook-endpoints/{body['id']}", headers=ADMIN)
    ).status_code == 404
    assert (
        await client.delete(f"/v1/webhook-endpoints/{body['id']}", headers=ADMIN)
    ).status_code == 404


async def test_deliveries_survive_in_postgres(database_url: str) -> None:
    async with (
        serving(Receiver()) as receiver,
        running_service(database_url, **FAST) as (_, client),
    ):
        endpoint = await subscribe(client, receiver)
        listing = await open_listing(client)
        await bid(client, listing, 100_000, 1500)

        await reaches(client, endpoint, "delivered")
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, attempts FROM webhook_deliveries")
    finally:
        await conn.close()
    assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 1)]
