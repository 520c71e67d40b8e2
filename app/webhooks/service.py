"""Webhook endpoint administration and manual redelivery."""

import base64
import logging
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import asyncpg
import orjson

from app.clock import format_utc
from app.errors import Invalid, NotFound
from app.ids import parse_id
from app.metrics import Metrics
from app.settings import Settings
from app.webhooks.dispatcher import DispatchConfig, Dispatcher
from app.webhooks.egress import InvalidURL, literal_refusal
from app.webhooks.sealing import SecretBox, secret_box
from app.webhooks.store import WebhookStore

if TYPE_CHECKING:
    from app.store import Connection

log = logging.getLogger(__name__)

DEFAULT_EVENT_TYPES = ["listing.funded", "listing.failed"]


class Webhooks:
    def __init__(
        self, store: WebhookStore, dispatcher: Dispatcher, box: SecretBox, allow_private: bool
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.box = box
        self.allow_private = allow_private

    async def create(
        self, url: str, event_types: list[str] | None, description: str,
        conn: "Connection | None" = None,
    ) -> dict[str, Any]:
        try:
            refused = literal_refusal(url, self.allow_private)
        except InvalidURL as error:
            raise Invalid(
                "validation_error", f"url is not a valid URL: {error}",
                extra={"errors": [{"field": "url", "message": str(error)}]},
            ) from None
        if refused is not None:
            raise Invalid(
                "webhook_url_not_allowed",
                f"{refused}: webhooks do not go to loopback, private, link-local, multicast or"
                " metadata addresses (LOAN_AUCTION_WEBHOOK_ALLOW_PRIVATE=true allows private"
                " targets for local development)",
                extra={"errors": [{"field": "url", "message": refused}]},
            )
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        row = await self.store.create_endpoint(
            uuid4(),
            url,
            sorted(set(event_types or DEFAULT_EVENT_TYPES)),
            description,
            self.box.seal(secret),
            datetime.now(UTC),
            conn,
        )
        self.dispatcher.endpoint_added()
        return {**_endpoint(row), "secret": secret}

    async def list(self) -> dict[str, Any]:
        return {"data": [_endpoint(r) for r in await self.store.endpoints()]}

    async def get(self, endpoint_id: str) -> dict[str, Any]:
        row = await self.store.endpoint(_endpoint_id(endpoint_id))
        if row is None:
            raise NotFound("webhook_endpoint_not_found", "no webhook endpoint with this id")
        return _endpoint(row)

    async def delete(self, endpoint_id: str) -> None:
        if not await self.store.delete_endpoint(_endpoint_id(endpoint_id)):
            raise NotFound("webhook_endpoint_not_found", "no webhook endpoint with this id")

    async def deliveries(self, endpoint_id: str, limit: int) -> dict[str, Any]:
        await self.get(endpoint_id)
        rows = await self.store.deliveries(_endpoint_id(endpoint_id), limit)
        return {"data": [_delivery(r) for r in rows]}

    async def redeliver(self, event_id: str, conn: "Connection | None" = None) -> dict[str, Any]:
        """Queue a known event again (the caller checked it exists)."""
        rows = await self.store.redeliver(parse_id(event_id, "event_not_found"), conn)
        self.dispatcher.nudge()
        return {
            "data": [
                {"id": str(r["id"]), "endpoint_id": str(r["endpoint_id"]), "status": r["status"]}
                for r in rows
            ]
        }


async def start(
    settings: Settings, pool: asyncpg.Pool, relay: asyncpg.Pool, metrics: Metrics
) -> Webhooks:
    """Seal any clear-text secrets, then wire the admin service and the dispatcher (which
    works on `relay`, a pool that commits asynchronously)."""
    box = secret_box(settings)
    store = WebhookStore(pool)
    sealed = await seal_secrets(store, box, rotate=False)
    if sealed:
        log.info("webhook secrets sealed at rest", extra={"endpoints": sealed})
    config = DispatchConfig(
        settings.retry_schedule(), settings.webhook_timeout_s, settings.webhook_poll_s,
        settings.webhook_concurrency, settings.webhook_max_in_flight,
        settings.webhook_allow_private,
    )
    dispatcher = Dispatcher(WebhookStore(relay), box, metrics, config)
    return Webhooks(store, dispatcher, box, settings.webhook_allow_private)


async def seal_secrets(store: WebhookStore, box: SecretBox, rotate: bool) -> int:
    """Seal clear-text secrets (rows from before migration 005); with `rotate`, also re-seal
    every sealed one under the current key. Returns the endpoints changed."""

    def reseal(clear: str | None, sealed: str | None) -> str | None:
        if clear is not None:
            return box.seal(clear)
        if rotate and sealed is not None:
            return box.reseal(sealed)
        return None

    return await store.reseal_secrets(reseal)


def _endpoint(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "url": row["url"],
        "event_types": list(row["event_types"]),
        "description": row["description"],
        "status": row["status"],
        "disabled_reason": row["disabled_reason"],
        "created_at": _time(row["created_at"]),
    }


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "event_id": str(row["event_id"]),
        "event_type": row["type"],
        "event_seq": row["event_seq"],
        "status": row["status"],
        "attempts": row["attempts"],
        "next_attempt_at": _time(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "delivered_at": _time(row["delivered_at"]),
        "last_error": row["last_error"],
        "attempt_log": orjson.loads(row["attempts_log"]),
    }


def _endpoint_id(value: str) -> UUID:
    return parse_id(value, "webhook_endpoint_not_found")


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_utc(moment)
