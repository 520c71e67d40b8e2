"""The dispatcher: relays committed events to subscribed endpoints, at least once.

Driven from Postgres so nothing is lost across restarts:
- fan-out reads the event log past a stored cursor and creates one delivery per subscribed
  endpoint (one statement, so the cursor and the deliveries move together);
- delivery claims due deliveries with a lease (a crash mid-attempt makes them due again), up to
  `concurrency` in flight per endpoint and `max_in_flight` in all, so a hanging receiver holds
  only its own slots, never another endpoint's, and never the bidding path (no database
  connection is held over HTTP);
- outcomes are recorded in batches, one statement for all attempts that finished meanwhile.

It wakes when events commit (`nudge`) or a delivery finishes, and polls every `poll_s` for
retries that came due. Its own pool commits asynchronously: every write here can be replayed
(fan-out from the cursor, an unrecorded attempt from its lease), so a crash costs at most a
repeated delivery, which at-least-once allows. With several in flight per endpoint, deliveries
may arrive out of order; each carries its event's `seq`.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from standardwebhooks import Webhook

from app.metrics import Metrics
from app.rendering import event_from_row
from app.waits import event_or_timeout
from app.webhooks.egress import InvalidURL, literal_refusal
from app.webhooks.sealing import SecretBox
from app.webhooks.store import Attempt, WebhookStore

if TYPE_CHECKING:
    from app.webhooks.client import WebhookClient

log = logging.getLogger(__name__)

_FAN_OUT_BATCH = 1000
_SHUTDOWN_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    schedule: list[float]
    timeout_s: float
    poll_s: float
    concurrency: int
    max_in_flight: int
    allow_private: bool


class Dispatcher:
    def __init__(
        self, store: WebhookStore, box: SecretBox, metrics: Metrics, config: DispatchConfig
    ) -> None:
        self.store = store
        self.box = box
        self.metrics = metrics
        self.config = config
        self._wakeup = asyncio.Event()
        self._new_events = True
        #: Whether the last fan-out saw an enabled endpoint: while none is, new events are
        #: fanned out only every `poll_s` (moving the cursor), not after every commit.
        self._subscribed = True
        #: Until then fan out after every commit anyway: an endpoint was just added, maybe in a
        #: transaction the last fan-out could not see yet.
        self._added_until = 0.0
        self._freed = False
        self._fanned_at = self._claimed_at = 0.0
        self._in_flight: dict[UUID, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: list[Attempt] = []
        self._to_record = asyncio.Event()
        self._stopping = False
        self._signers: dict[str, Webhook] = {}
        self._refusals: dict[str, str | None] = {}  # literal-address checks, by URL
        self._client: WebhookClient | None = None  # made at the first delivery

    def nudge(self) -> None:
        """New events were committed: fan them out now."""
        self._new_events = True
        self._wakeup.set()

    def endpoint_added(self) -> None:
        """Fan out after every commit again (the store moved the cursor past older events)."""
        self._added_until = time.monotonic() + self.config.poll_s

    async def run(self) -> None:
        recorder = asyncio.create_task(self._record_forever(), name="webhook-outcomes")
        try:
            while True:
                try:
                    await self._round()
                except Exception as error:  # postgres away or a bug: log, back off, go on
                    log.warning("webhook round failed", extra={"error": repr(error)})
                    await asyncio.sleep(self.config.poll_s)
                await event_or_timeout(self._wakeup, self.config.poll_s)
                self._wakeup.clear()
        finally:  # on shutdown, let attempts in flight finish briefly and record what we know
            in_flight = list(self._tasks)
            if in_flight:
                await asyncio.wait(in_flight, timeout=_SHUTDOWN_GRACE_S)
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            self._stopping = True  # the recorder records what finished, then ends
            self._to_record.set()
            await asyncio.wait([recorder], timeout=_SHUTDOWN_GRACE_S)
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            if self._client is not None:
                await self._client.close()

    async def _round(self) -> None:
        now = time.monotonic()
        created = 0
        nudged = self._new_events and (self._subscribed or now < self._added_until)
        if nudged or now - self._fanned_at >= self.config.poll_s:
            self._new_events, self._fanned_at = False, now
            created = await self._fan_out()
        room = self.config.max_in_flight - len(self._tasks)
        due = created or self._freed or now - self._claimed_at >= self.config.poll_s
        if room > 0 and due:
            self._freed, self._claimed_at = False, now
            await self._claim(room)

    async def _fan_out(self) -> int:
        created = 0
        while True:
            events, deliveries, self._subscribed = await self.store.fan_out(_FAN_OUT_BATCH)
            created += deliveries
            if events < _FAN_OUT_BATCH:
                return created

    async def _claim(self, room: int) -> None:
        lease = self.config.timeout_s + 30
        rows = await self.store.claim(self._in_flight, self.config.concurrency, room, lease)
        for row in rows:
            endpoint_id: UUID = row["endpoint_id"]
            self._in_flight[endpoint_id] = self._in_flight.get(endpoint_id, 0) + 1
            task = asyncio.create_task(self._deliver(row))
            self._tasks.add(task)

    async def _deliver(self, row: Any) -> None:
        try:
            attempt = await self._attempt(row)
            self._finished.append(attempt)  # the list as it is now: the recorder swaps it
            self._to_record.set()
        except Exception as error:  # the lease makes the delivery due again
            log.warning("webhook attempt failed: %r", error)
        finally:
            endpoint_id = row["endpoint_id"]
            left = self._in_flight.pop(endpoint_id) - 1
            if left:
                self._in_flight[endpoint_id] = left
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            self._freed = True
            self._wakeup.set()

    async def _attempt(self, row: Any) -> Attempt:
        started = time.perf_counter()
        at = datetime.now(UTC)
        status_code, error = await self._post(row, at)
        latency_ms = int((time.perf_counter() - started) * 1000)
        attempts = row["attempts"] + 1
        next_at = None
        if status_code is not None and 200 <= status_code < 300:
            outcome = "delivered"
            self.metrics.webhook_lag.observe((at - row["event_created_at"]).total_seconds())
        elif status_code == 410 or attempts > len(self.config.schedule):
            outcome = "failed"
        else:
            outcome = "pending"
            next_at = at + timedelta(seconds=self.config.schedule[attempts - 1])
        self.metrics.webhook_deliveries.labels(outcome).inc()
        return Attempt(
            row["id"], row["endpoint_id"], at, status_code, latency_ms, error, outcome, next_at
        )

    async def _post(self, row: Any, at: datetime) -> tuple[int | None, str | None]:
        """One signed POST; (status, error)."""
        url: str = row["url"]
        refused = self._literal_refusal(url)
        if refused is not None:
            return None, refused
        event = event_from_row({
            "id": row["event_id"], "seq": row["seq"], "type": row["type"],
            "created_at": row["event_created_at"], "data": row["data"], "hash": row["hash"],
        })
        body = orjson.dumps(event)
        headers = {
            "content-type": "application/json",
            "webhook-id": event["id"],
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self._signer(row["secret_sealed"]).sign(
                event["id"], at, body.decode()
            ),
        }
        return await self._http().post(url, body, headers)

    def _http(self) -> "WebhookClient":
        if self._client is None:
            # aiohttp (~70 ms to import) at the first delivery: most starts never deliver
            from app.webhooks.client import WebhookClient

            self._client = WebhookClient(
                self.config.max_in_flight, self.config.timeout_s, self.config.allow_private
            )
        return self._client

    def _literal_refusal(self, url: str) -> str | None:
        """A URL naming an address skips the resolver: check it here (cached per URL)."""
        if url not in self._refusals:
            if len(self._refusals) > 10_000:
                self._refusals.clear()
            try:
                self._refusals[url] = literal_refusal(url, self.config.allow_private)
            except InvalidURL as error:  # stored before URLs were checked this strictly
                self._refusals[url] = f"invalid URL: {error}"
        return self._refusals[url]

    def _signer(self, sealed: str) -> Webhook:
        signer = self._signers.get(sealed)
        if signer is None:
            if len(self._signers) > 10_000:  # rotated secrets leave old entries behind
                self._signers.clear()
            signer = self._signers[sealed] = Webhook(self.box.open(sealed))
        return signer

    async def _record_forever(self) -> None:
        """Record finished attempts as they come; never cancelled mid-write (see `run`)."""
        while True:
            await self._to_record.wait()
            self._to_record.clear()
            try:
                await self._record()
            except Exception as error:  # unrecorded attempts come due again with their lease
                log.warning("webhook outcomes not recorded", extra={"error": repr(error)})
            if self._stopping and not self._finished:
                return

    async def _record(self) -> None:
        finished, self._finished = self._finished, []
        if not finished:
            return
        await self.store.record_attempts(finished)
        for attempt in finished:
            if attempt.status_code == 410:
                await self.store.disable_endpoint(attempt.endpoint_id, "receiver answered 410 Gone")
