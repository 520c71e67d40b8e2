"""Webhook endpoint administration and manual redelivery."""

import base64
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import orjson

from app.clock import format_utc
from app.errors import NotFound
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.store import WebhookStore

if TYPE_CHECKING:
    from app.store import Connection

DEFAULT_EVENT_TYPES = ["listing.funded", "listing.failed"]


class Webhooks:
    def __init__(self, store: WebhookStore, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher

    async def create(
        self, url: str, event_types: list[str] | None, description: str,
        conn: "Connection | None" = None,
    ) -> dict[str, Any]:
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        row = await self.store.create_endpoint(
            uuid4(),
            url,
            sorted(set(event_types or DEFAULT_EVENT_TYPES)),
            description,
            secret,
            datetime.now(UTC),
            conn,
        )
        return {**_endpoint(row), "secret": secret}

    async def list(self) -> dict[str, Any]:
        return {"data": [_endpoint(r) for r in await self.store.endpoints()]}

    async def get(self, endpoint_id: str) -> dict[str, Any]:
        row = await self.store.endpoint(_uuid(endpoint_id, "webhook_endpoint_not_found"))
        if row is None:
            raise NotFound("webhook_endpoint_not_found", "no webhook endpoint with this id")
        return _endpoint(row)

    async def delete(self, endpoint_id: str) -> None:
        if not await self.store.delete_endpoint(_uuid(endpoint_id, "webhook_endpoint_not_found")):
            raise NotFound("webhook_endpoint_not_found", "no webhook endpoint with this id")

    async def deliveries(self, endpoint_id: str, limit: int) -> dict[str, Any]:
        await self.get(endpoint_id)
        rows = await self.store.deliveries(_uuid(endpoint_id, "webhook_endpoint_not_found"), limit)
        return {"data": [_delivery(r) for r in rows]}

    async def redeliver(self, event_id: str, conn: "Connection | None" = None) -> dict[str, Any]:
        """Queue a known event again (the caller checked it exists)."""
        rows = await self.store.redeliver(_uuid(event_id, "event_not_found"), conn)
        self.dispatcher.nudge()
        return {
            "data": [
                {"id": str(r["id"]), "endpoint_id": str(r["endpoint_id"]), "status": r["status"]}
                for r in rows
            ]
        }


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


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_utc(moment)


def _uuid(value: str, code: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound(code, "no such id") from None
