"""The service layer for writes: run a command through the engine, journal it, then answer.

Engine calls are synchronous and happen between awaits, so the event loop itself serialises
them: `seq` order, engine order and journal order are one order. An answer goes out only after
the journal entry carrying the action (rows, outbox events, idempotency record) has committed.
"""

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from app.auth import Principal
from app.clock import Clock
from app.errors import ApiError, Conflict, NotFound, Unavailable, from_rejection
from app.idempotency import Idempotency, IdempotentRequest, Reply, is_outcome
from app.ids import new_id, parse_id
from app.journal import BatchStats, Entry, JournalWriter
from app.metrics import Metrics
from app.outcomes import EntryBuilder
from app.recovery import end_sessions, rebuild
from app.rendering import account_json, bid_from_view, entry_json, placed_bid_json
from app.store import Store
from matching import (
    AcceptEarly,
    AdvanceClock,
    BidPlaced,
    CancelListing,
    Deposit,
    Engine,
    Event,
    GradePolicy,
    LedgerEntry,
    ListingPolicy,
    ListingTerms,
    MarketRules,
    OpenListing,
    PlaceBid,
    Rejection,
    Withdraw,
)
from matching.events import Resolution
from matching.policy import DEFAULT_AUTOBID_MAX_SHARE_BPS
from matching.rejections import LISTING_NOT_FOUND, LISTING_NOT_OPEN
from matching.rules import Grade, Pricing

log = logging.getLogger(__name__)

#: Listings resolved per journal entry when many are due at once.
RESOLVE_BATCH = 200

#: A command run through the engine: its events and how to render the answer, or a rejection.
#: The answer is rendered after the journal entry is built, so it can name the loan it booked.
Acted = tuple[list[Event], Callable[[], Reply]] | Rejection
Action = Callable[[], Acted]
Guard = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class NewListing:
    borrower_id: str
    amount: int
    term_months: int
    max_rate_bps: int
    grade: Grade
    closes_at: int | None
    duration_s: int | None
    min_funding_bps: int
    close_when_funded: bool
    pricing: Pricing


class Market:
    """Owns the engine, the sequence counter and the write path."""

    def __init__(
        self, store: Store, rules: MarketRules, currency: str, metrics: Metrics,
        policies: dict[Grade, GradePolicy], max_lender_share_bps: int,
        autobid_max_share_bps: int = DEFAULT_AUTOBID_MAX_SHARE_BPS,
    ) -> None:
        self.store = store
        self.rules = rules
        self.currency = currency
        self.metrics = metrics
        self.policies = policies
        self.max_lender_share_bps = max_lender_share_bps
        self.autobid_max_share_bps = autobid_max_share_bps
        self.clock = Clock()
        self.engine = Engine(rules)
        self.entries = EntryBuilder(self.engine, currency)
        self.idempotency = Idempotency(store)
        self.writer: JournalWriter | None = None
        self.writable = False
        self.deadline_changed = asyncio.Event()
        self._seq = 0
        self._recovering: asyncio.Task[None] | None = None
        self._resolving: dict[str, asyncio.Future[None]] = {}

    # --- lifecycle --------------------------------------------------------------------------

    async def recover(self) -> None:
        """Rebuild the books from Postgres, then resolve what lapsed while we were away."""
        if self.writer is not None:
            await end_sessions(self.store, self.writer.abandoned_sessions)
        engine, max_seq = await rebuild(self.store, self.rules)
        self.engine = engine
        self.entries = EntryBuilder(engine, self.currency)
        self._seq = max(self._seq, max_seq)
        self.writable = True
        self.metrics.set_book_gauges(engine)
        self.advance_clock()
        self.deadline_changed.set()
        log.info("books rebuilt", extra={"open_listings": len(engine.open_listing_ids())})

    async def on_journal_failure(self, error: BaseException) -> None:
        """A batch did not commit: the books may hold writes Postgres lacks. Stop and rebuild."""
        self.writable = False
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.create_task(self._recover_until_done())

    async def _recover_until_done(self) -> None:
        delay = 0.2
        while True:
            try:
                await self.recover()
                return
            except Exception as error:  # postgres away raises many kinds; keep trying
                log.warning("recovery waiting for postgres", extra={"error": repr(error)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def step_down(self) -> None:
        """This market stops: refuse writes and stop any rebuild (the books go stale now)."""
        self.writable = False
        if self._recovering is not None:
            self._recovering.cancel()

    def on_commit(self, entry: Entry, stats: BatchStats) -> None:
        for listing_id in entry.released:
            self.engine.release(listing_id)
        self.metrics.journal_committed(stats)

    # --- commands ---------------------------------------------------------------------------

    async def open_listing(
        self, who: Principal, new: NewListing, idem: IdempotentRequest | None
    ) -> Reply:
        who.require("borrower", "admin")
        who.require_subject(new.borrower_id)

        def act() -> Acted:
            at = self.clock.now()
            closes_at = new.closes_at
            if closes_at is None:
                closes_at = at + (new.duration_s or 0) * 1_000_000
            policy = ListingPolicy.of(
                self.policies[new.grade], self.max_lender_share_bps, self.autobid_max_share_bps
            )
            terms = ListingTerms(
                new_id(), new.borrower_id, new.amount, new.term_months, new.max_rate_bps,
                new.grade, closes_at, new.min_funding_bps, new.close_when_funded, new.pricing,
                policy, loan_id=new_id(),
            )
            outcome = self.engine.open_listing(OpenListing(terms, self._next_seq(), at))
            if isinstance(outcome, Rejection):
                return outcome
            self._after_auto_bids(outcome)
            self.deadline_changed.set()
            return outcome, lambda: _reply(201, self.entries.listing_json(terms.listing_id))

        return await self._write(idem, act)

    async def place_bid(
        self,
        who: Principal,
        listing_id: str,
        lender_id: str,
        amount: int,
        rate_bps: int,
        idem: IdempotentRequest | None,
    ) -> Reply:
        who.require("lender", "admin")
        who.require_subject(lender_id)
        listing_id = canonical_id(listing_id)

        def act() -> Acted:
            command = PlaceBid(
                listing_id,
                new_id(),
                lender_id,
                amount,
                rate_bps,
                self._next_seq(),
                self.clock.now(),
            )
            outcome = self.engine.place_bid(command)
            if isinstance(outcome, Rejection):
                self.metrics.bid_rejected(outcome.code)
                return outcome
            self.metrics.bid_accepted(len(outcome) - 1)
            placed = outcome
            return placed, lambda: _reply(201, self._placed_bid_json(placed))

        return await self._write(idem, act, listing_id)

    async def accept(
        self, who: Principal, listing_id: str, idem: IdempotentRequest | None
    ) -> Reply:
        return await self._owner_closes(who, listing_id, idem, AcceptEarly)

    async def cancel(
        self, who: Principal, listing_id: str, idem: IdempotentRequest | None
    ) -> Reply:
        return await self._owner_closes(who, listing_id, idem, CancelListing)

    async def _owner_closes(
        self,
        who: Principal,
        listing_id: str,
        idem: IdempotentRequest | None,
        command: type[AcceptEarly] | type[CancelListing],
    ) -> Reply:
        who.require("borrower", "admin")
        listing_id = canonical_id(listing_id)
        return await self._write(
            idem,
            lambda: self._close(command(listing_id, self._next_seq(), self.clock.now())),
            listing_id,
            lambda: self._require_owner(who, listing_id),
        )

    async def move_money(
        self, who: Principal, account_id: str, amount: int, reference: str | None,
        withdrawal: bool, idem: IdempotentRequest | None,
    ) -> Reply:
        """A deposit (admin, checked by the route: the payment side reports money in custody)
        or a withdrawal (the account's owner or an admin)."""
        if withdrawal:
            who.require_subject(account_id)

        def act() -> Acted:
            kind = Withdraw if withdrawal else Deposit
            outcome = self.engine.execute(
                kind(account_id, new_id(), amount, self.clock.now(), reference)
            )
            if isinstance(outcome, Rejection):
                return outcome
            moved = outcome[0]
            assert isinstance(moved, LedgerEntry)
            return outcome, lambda: _reply(201, {
                "entry": entry_json(moved), "account": self.account_json(account_id),
            })

        return await self._write(idem, act)

    def account_json(self, account_id: str) -> dict[str, Any] | None:
        balance = self.engine.balance(account_id)
        return None if balance is None else account_json(account_id, balance, self.currency)

    def advance_clock(self) -> None:
        """Resolve every listing whose deadline passed; called by the scheduler and after a
        rebuild. At most RESOLVE_BATCH listings per journal entry, so a long outage's backlog
        commits in bounded transactions instead of one that outgrows the command timeout."""
        if not self.writable:
            return
        now = self.clock.now()
        while True:
            events = self.engine.advance_clock(AdvanceClock(now, RESOLVE_BATCH))
            assert not isinstance(events, Rejection)
            if not events:
                return
            self._submit(self._entry(events)).add_done_callback(_consume)

    # --- internals --------------------------------------------------------------------------

    def _close(
        self, command: AcceptEarly | CancelListing
    ) -> Acted:
        outcome = self.engine.execute(command)
        if isinstance(outcome, Rejection):
            return outcome
        return outcome, lambda: _reply(200, self.entries.listing_json(command.listing_id))

    async def _write(
        self,
        idem: IdempotentRequest | None,
        act: Action,
        listing_id: str | None = None,
        guard: Guard | None = None,
    ) -> Reply:
        """`guard` runs inside the idempotent section: a retry replays before it can refuse."""
        if idem is None:
            return await self._act(act, None, listing_id, guard)
        return await self.idempotency.run(idem, lambda: self._act(act, idem, listing_id, guard))

    async def _act(
        self,
        act: Action,
        idem: IdempotentRequest | None,
        listing_id: str | None,
        guard: Guard | None = None,
    ) -> Reply:
        if not self.writable:
            raise Unavailable("the service is rebuilding its books; retry shortly")
        try:
            events, render = await self._decide(act, listing_id, guard)
        except ApiError as error:
            if idem is None or not is_outcome(error):
                raise
            reply = idem.refusal(error)  # decided by the engine: stored, and replayed
            await self._commit(Entry(idempotency=[idem.record(reply, datetime.now(UTC))]))
            return reply
        entry = self._entry(events)
        reply = render()
        if idem is not None:
            entry.idempotency.append(idem.record(reply, datetime.now(UTC)))
        await self._commit(entry)
        return reply

    async def _decide(
        self, act: Action, listing_id: str | None, guard: Guard | None
    ) -> tuple[list[Event], Callable[[], Reply]]:
        if guard is not None:
            await guard()
        result = act()
        if isinstance(result, Rejection):
            if result.code == LISTING_NOT_FOUND and listing_id is not None:
                raise await self._closed_or_missing(listing_id)
            raise from_rejection(result)
        return result

    async def _commit(self, entry: Entry) -> None:
        """A request cancelled while waiting cancels the future it awaits. The writer skips a
        cancelled future and still writes its entry, so an entry only this request waits for
        is awaited as it is; one that resolves listings is shielded, as `settled` waits on it
        (a shield costs a future, two callbacks and a turn of the loop: ~1.6 µs a bid)."""
        future = self._submit(entry)
        try:
            await (asyncio.shield(future) if entry.released else future)
        except Exception as error:
            raise Unavailable("the write could not be stored; retry") from error

    def _entry(self, events: list[Event]) -> Entry:
        for event in events:
            self.metrics.event_decided(event)
        return self.entries.build(events)

    def _submit(self, entry: Entry) -> "asyncio.Future[None]":
        assert self.writer is not None
        future = self.writer.submit(entry)
        for listing_id in entry.released:
            self._resolving[listing_id] = future
        if entry.released:
            future.add_done_callback(lambda _: self._forget_resolving(entry.released))
        return future

    def _forget_resolving(self, listing_ids: list[str]) -> None:
        for listing_id in listing_ids:
            self._resolving.pop(listing_id, None)

    def is_resolving(self, listing_id: str) -> bool:
        return listing_id in self._resolving

    async def settled(self, listing_id: str) -> None:
        """Wait until a resolution decided in memory is committed or failed, so readers never
        see a loan that Postgres does not have yet. Free when nothing is resolving."""
        pending = self._resolving.get(listing_id)
        if pending is not None:
            await asyncio.wait([pending])

    def _placed_bid_json(self, events: list[Event]) -> dict[str, Any]:
        placed = events[0]
        assert isinstance(placed, BidPlaced)
        if not any(isinstance(e, Resolution) for e in events):
            return placed_bid_json(placed)  # still open: what the view would say, without it
        view = self.engine.bid(placed.listing_id, placed.seq)
        assert view is not None
        return bid_from_view(view)

    async def stored_listing(self, listing_id: str) -> Any:
        """The listing's row in Postgres, closed or open; 404 `listing_not_found` without one
        (an id that is not a UUID names none)."""
        detail = "no listing with this id"
        row = await self.store.listing(parse_id(listing_id, LISTING_NOT_FOUND, detail))
        if row is None:
            raise NotFound(LISTING_NOT_FOUND, detail)
        return row

    async def _closed_or_missing(self, listing_id: str) -> ApiError:
        """The engine forgets closed listings; Postgres tells closed from never-existed."""
        try:
            row = await self.stored_listing(listing_id)
        except NotFound as missing:
            return missing
        return Conflict(LISTING_NOT_OPEN, f"listing is {row['status']}")

    async def _require_owner(self, who: Principal, listing_id: str) -> None:
        who.require("borrower", "admin")
        summary = self.engine.summary(listing_id)
        if summary is not None:
            who.require_subject(summary.terms.borrower_id)
            return
        row = await self.stored_listing(listing_id)
        who.require_subject(row["borrower_id"])
        raise Conflict(LISTING_NOT_OPEN, f"listing is {row['status']}")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _after_auto_bids(self, events: list[Event]) -> None:
        """The standing orders' bids took the seqs after their listing's: continue after them."""
        for event in events:
            if isinstance(event, BidPlaced):
                self._seq = max(self._seq, event.seq)
                self.metrics.bid_accepted(0)

    # --- for capability services (app/standing_orders/) ---------------------------------------

    def next_seq(self) -> int:
        return self._next_seq()

    async def write(
        self, idem: IdempotentRequest | None, act: Action, guard: Guard | None = None
    ) -> Reply:
        """Run an engine command through the journal, idempotently, like the market's own."""
        return await self._write(idem, act, None, guard)


@functools.lru_cache(maxsize=4096)  # every bid names its listing: parse each id once
def canonical_id(value: str) -> str:
    """A UUID in its canonical spelling, as the engine keys it; anything else as given (a 404)."""
    try:
        return str(UUID(value))
    except ValueError:
        return value


def _reply(status: int, body: dict[str, Any]) -> Reply:
    return Reply(status, orjson.dumps(body))


def _consume(future: "asyncio.Future[None]") -> None:
    if not future.cancelled():
        future.exception()  # failures are handled by the writer's recovery; mark as seen
