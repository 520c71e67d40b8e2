"""The dispatcher: relays committed events to subscribed endpoints, at least once.

Two steps, both driven from Postgres so nothing is lost across restarts:
- fan-out reads the event log past a stored cursor and creates one delivery per subscribed
  endpoint (in one statement, so the cursor and the deliveries move together);
- delivery claims due deliveries (a lease: a crash mid-attempt makes it due again), at most one
  in flight per endpoint, so a hanging receiver holds only its own slot and never another
  endpoint's deliveries, and never the bidding path (no database connection is held over HTTP).
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import orjson
from standardwebhooks import Webhook

from app.clock import format_utc
from app.metrics import Metrics
from app.waits import event_or_timeout
from app.webhooks.store import WebhookStore

log = logging.getLogger(__name__)

_FAN_OUT_BATCH = 1000
_MAX_IN_FLIGHT = 32
_SHUTDOWN_GRACE_S = 2.0
_MIN_GAP_S = 0.1  # at most ten rounds a second, however many commits nudge it


class Dispatcher:
    def __init__(
        self, store: WebhookStore, metrics: Metrics, schedule: Sequence[float], timeout_s: float,
        poll_s: float,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.schedule = list(schedule)
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._wakeup = asyncio.Event()
        self._busy: dict[UUID, asyncio.Task[None]] = {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False,
            limits=httpx.Limits(max_connections=_MAX_IN_FLIGHT, max_keepalive_connections=8),
        )

    def nudge(self) -> None:
        """New events were committed: look sooner than the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._round()
                except Exception as error:  # postgres away or a bug: log, back off, go on
                    log.warning("webhook round failed", extra={"error": repr(error)})
                await asyncio.sleep(min(_MIN_GAP_S, self.poll_s))
                await event_or_timeout(self._wakeup, self.poll_s)
                self._wakeup.clear()
        finally:  # on shutdown, let attempts in flight record their outcome briefly
            in_flight = list(self._busy.values())
            if in_flight:
                await asyncio.wait(in_flight, timeout=_SHUTDOWN_GRACE_S)
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            await self._client.aclose()

    async def _round(self) -> None:
        while await self.store.fan_out(_FAN_OUT_BATCH) == _FAN_OUT_BATCH:
            pass
        room = _MAX_IN_FLIGHT - len(self._busy)
        if room <= 0:
            return
        lease = self.timeout_s + 30
        for row in await self.store.claim(list(self._busy), room, lease):
            endpoint_id: UUID = row["endpoint_id"]
            self._busy[endpoint_id] = asyncio.create_task(self._deliver_then_free(row))

    async def _deliver_then_free(self, row: Any) -> None:
        try:
            await self._deliver(row)
        except Exception as error:  # the lease makes the delivery due again
            log.warning("webhook attempt not recorded: %r", error)
        finally:
            self._busy.pop(row["endpoint_id"], None)
            self._wakeup.set()  # the endpoint may have more due deliveries

    async def _deliver(self, row: Any) -> None:
        started = time.perf_counter()
        at = datetime.now(UTC)
        status_code, error = await self._post(row, at)
        latency_ms = int((time.perf_counter() - started) * 1000)
        attempts = row["attempts"] + 1
        if status_code is not None and 200 <= status_code < 300:
            outcome, next_at = "delivered", None
            self.metrics.webhook_lag.observe((at - row["event_created_at"]).total_seconds())
        elif status_code == 410:
            outcome, next_at = "failed", None
        elif attempts > len(self.schedule):
            outcome, next_at = "failed", None
        else:
            outcome, next_at = "pending", at + timedelta(seconds=self.schedule[attempts - 1])
        self.metrics.webhook_deliveries.labels(outcome).inc()
        await self.store.record_attempt(
            row["id"], at, status_code, latency_ms, error, outcome, next_at
        )
        if status_code == 410:
            await self.store.disable_endpoint(row["endpoint_id"], "receiver answered 410 Gone")

    async def _post(self, row: Any, at: datetime) -> tuple[int | None, str | None]:
        """One signed POST; (status, error). The body is never read, so size cannot hurt."""
        event_id = str(row["event_id"])
        body = orjson.dumps({
            "id": event_id, "seq": row["seq"], "type": row["type"],
            "created_at": format_utc(row["event_created_at"]), "data": row["data"],
        }).decode()
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(row["secret"]).sign(event_id, at, body),
        }
        try:
            async with asyncio.timeout(self.timeout_s):
                request = self._client.stream("POST", row["url"], content=body, headers=headers)
                async with request as r:
                    return r.status_code, None if r.is_success else f"HTTP {r.status_code}"
        except TimeoutError:
            return None, f"timed out after {self.timeout_s} s"
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}"[:500]
