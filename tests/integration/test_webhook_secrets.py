"""Webhook signing secrets are encrypted at rest with the configured key; old clear-text rows
are sealed at start; without a key, a service with a real database refuses to start."""

import base64
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from app.main import create_app
from app.settings import Settings
from tests.integration.conftest import SECRETS_KEY, running_service
from tests.integration.receiver import Receiver, serving
from tests.integration.test_webhooks import FAST, bid, open_listing, subscribe


async def endpoint_rows(database_url: str) -> list[dict[str, object]]:
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM webhook_endpoints")]
    finally:
        await conn.close()


async def test_a_signing_secret_is_stored_encrypted_and_still_signs(database_url: str) -> None:
    async with (
        serving(Receiver()) as receiver,
        running_service(database_url, **FAST) as (_, client),
    ):
        await subscribe(client, receiver, ["bid.placed"])
        await bid(client, await open_listing(client, duration_s=600), 5_000, 1000)
        await receiver.until_delivered(1)
    assert receiver.bad_signatures == 0
    [row] = await endpoint_rows(database_url)
    key_material = receiver.secret.removeprefix("whsec_")
    stored = repr(row)
    assert receiver.secret not in stored and key_material not in stored
    assert base64.b64decode(key_material).hex() not in stored
    assert row["secret"] is None
    assert Fernet(SECRETS_KEY).decrypt(str(row["secret_sealed"])).decode() == receiver.secret


async def test_a_clear_text_secret_from_before_is_sealed_at_start_and_keeps_signing(
    database_url: str,
) -> None:
    async with serving(Receiver()) as receiver:
        receiver.secret = "whsec_" + base64.b64encode(b"stored in the clear by 002!!").decode()
        conn = await asyncpg.connect(database_url)
        try:  # as migration 002 left an endpoint
            await conn.execute(
                """INSERT INTO webhook_endpoints (id, url, event_types, secret, created_at)
                   VALUES ($1, $2, '{bid.placed}', $3, $4)""",
                uuid4(), receiver.url, receiver.secret, datetime.now(UTC),
            )
        finally:
            await conn.close()
        async with running_service(database_url, **FAST) as (_, client):
            await bid(client, await open_listing(client, duration_s=600), 5_000, 1000)
            await receiver.until_delivered(1)
    assert receiver.bad_signatures == 0
    [row] = await endpoint_rows(database_url)
    assert row["secret"] is None
    assert Fernet(SECRETS_KEY).decrypt(str(row["secret_sealed"])).decode() == receiver.secret


def test_with_a_database_and_no_key_the_service_refuses_to_start(database_url: str) -> None:
    with pytest.raises(SystemExit, match="LOAN_AUCTION_SECRETS_KEY is required with DATABASE_URL"):
        create_app(Settings(database_url=database_url, secrets_key=None))
    with pytest.raises(SystemExit, match="key 2 in LOAN_AUCTION_SECRETS_KEY is not a Fernet key"):
        create_app(Settings(database_url=database_url,
                            secrets_key=SecretStr(f"{SECRETS_KEY},not-a-key")))
