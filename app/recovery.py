"""Rebuilding the market from Postgres: the balances as stored, then every open listing and its
bids replayed in seq order (which puts each book back exactly, outbids included). The bids come
a book at a time, column by column, and a book they never covered is built in one go.

Bids are replayed without their admission checks and without moving money: they were admitted
when they arrived, and the money they froze is in the stored balances. What ties the two
together is checked before the service takes a write: each lender's reserved money equals its
live bids. Standing orders come back as stored (queue tickets and money included) before the
books, and each order's reserved money must equal its live auto bids too.
"""

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from typing import Any

from app.clock import to_micros
from app.journal.statements import Session
from app.store import Store
from matching import (
    Engine,
    ListingPolicy,
    ListingTerms,
    MarketRules,
    OpenListing,
    PlaceBid,
    StandingOrderView,
    StoredBids,
)

log = logging.getLogger(__name__)


_YIELD_EVERY = 20_000


class RecoveryError(Exception):
    """The journal does not replay: stored state breaks the rules. Needs a human."""


def open_command(row: Any) -> OpenListing:
    """An open listing from a `listings` row as stored (a uuid id, timestamptz times)."""
    return _open_listing(
        row, str(row["id"]), to_micros(row["closes_at"]), to_micros(row["opened_at"])
    )


def _recovered_listing(row: Any) -> OpenListing:
    """An open listing as the store reads it for recovery (the id as text, times in epoch µs:
    no uuid or datetime object made per listing only to be converted back)."""
    return _open_listing(row, row["id"], row["closes_at"], row["opened_at"])


def _open_listing(row: Any, listing_id: str, closes_at: int, opened_at: int) -> OpenListing:
    policy = ListingPolicy(
        row["floor_rate_bps"], row["service_fee_bps"], row["reserve_bps"],
        row["max_lender_share_bps"], row["autobid_max_share_bps"],
    )
    terms = ListingTerms(
        listing_id, row["borrower_id"], row["amount"], row["term_months"], row["max_rate_bps"],
        row["grade"], closes_at, row["min_funding_bps"], row["close_when_funded"],
        row["pricing"], policy, loan_id=str(row["loan_id"]),
    )
    return OpenListing(terms, row["seq"], opened_at)


def bid_command(row: Any) -> PlaceBid:
    return PlaceBid(
        str(row["listing_id"]), str(row["id"]), row["lender_id"], row["amount"],
        row["min_rate_bps"], row["seq"], to_micros(row["placed_at"]),
    )


def standing_order(row: Any) -> StandingOrderView:
    return StandingOrderView(
        str(row["id"]), row["lender_id"], tuple(row["grades"]), row["term_months_min"],
        row["term_months_max"], row["min_rate_bps"], row["amount_per_listing"], row["budget"],
        row["active"], row["deleted"], row["ticket"], row["reserved"], row["settled"],
        row["seq"], to_micros(row["created_at"]),
    )


async def rebuild(store: Store, rules: MarketRules) -> tuple[Engine, int]:
    """A fresh engine holding every open book and every balance, and the highest seq stored."""
    await settle(store)
    with collector_paused():
        return await _replay(store, rules)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The rebuild makes a few objects per book and per listing and frees none of them, so the
    cyclic GC's passes over them are wasted work (~20 % of a rebuild)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _replay(store: Store, rules: MarketRules) -> tuple[Engine, int]:
    started = time.perf_counter()
    engine = Engine(rules)
    async with store.open_journal() as stored:
        for row in stored.accounts:
            engine.restore_account(row["id"], row["available"], row["reserved"])
        for row in stored.funded:
            engine.restore_funded_principal(row["borrower_id"], row["principal"])
        engine.restore_entry_numbering(stored.last_entry_id)
        for row in stored.standing_orders:
            engine.restore_standing_order(standing_order(row))
        engine.restore_ticket_numbering(stored.last_ticket)
        # Listings first, in seq order, then each book's bids in seq order: a bid only touches
        # its own book, so this is the same state as replaying everything in seq order.
        for row in stored.listings:
            engine.restore_listing(_recovered_listing(row))
        read = time.perf_counter()
        bids = await _restore_books(engine, stored.books)
    replayed = time.perf_counter()
    _check_reservations(engine)
    _check_standing_orders(engine)
    log.info("journal replayed", extra={
        "listings": len(stored.listings), "bids": bids,
        "listings_s": round(read - started, 3), "books_s": round(replayed - read, 3),
        "check_s": round(time.perf_counter() - replayed, 3),
    })
    return engine, await store.max_seq()


async def _restore_books(engine: Engine, books: AsyncIterable[Any]) -> int:
    """Replay each stored book's bids as they are read; returns how many. A turn of the event
    loop every _YIELD_EVERY bids: a long replay must not starve the fence's lease renewal."""
    count, next_turn = 0, _YIELD_EVERY
    async for row in books:
        for part in _slices(row):
            engine.restore_bids(part)
            count += len(part.bid_ids)
            if count >= next_turn:
                next_turn = count + _YIELD_EVERY
                await asyncio.sleep(0)
    return count


def _slices(row: Any) -> Iterator[StoredBids]:
    """A stored book's bids in slices of at most _YIELD_EVERY (most books are one slice)."""
    size = len(row["bid_ids"])
    if size <= _YIELD_EVERY:
        yield _stored_bids(row, slice(None))  # no copy: the row's own lists
        return
    for start in range(0, size, _YIELD_EVERY):
        yield _stored_bids(row, slice(start, start + _YIELD_EVERY))


def _stored_bids(row: Any, part: slice) -> StoredBids:
    def cut(column: list[Any]) -> list[Any]:
        return column if part == slice(None) else column[part]

    orders = row["standing_order_ids"]
    return StoredBids(
        row["listing_id"], cut(row["bid_ids"]), cut(row["lender_ids"]), cut(row["amounts"]),
        cut(row["rates_bps"]), cut(row["seqs"]), cut(row["placed_at"]),
        None if orders is None else cut(orders),
    )


def _check_reservations(engine: Engine) -> None:
    """Stored balances and replayed books must agree on what every lender has frozen. O(bids)."""
    live = engine.live_reserved()
    for account, balance in engine.ledger.accounts.items():
        if balance.reserved != live.get(account, 0):
            raise RecoveryError(
                f"account {account} has {balance.reserved} reserved in storage but "
                f"{live.get(account, 0)} in live bids"
            )
    missing = set(live) - set(engine.ledger.accounts)
    if missing:
        raise RecoveryError(f"live bids of lenders without an account: {sorted(missing)[:5]}")


def _check_standing_orders(engine: Engine) -> None:
    """Stored orders and replayed books must agree on what each order's bids hold. O(bids)."""
    live = engine.live_auto_reserved()
    orders = {view.order_id: view for view in engine.orders.all_views()}
    for order_id, view in orders.items():
        if view.reserved != live.get(order_id, 0):
            raise RecoveryError(
                f"standing order {order_id} has {view.reserved} reserved in storage but "
                f"{live.get(order_id, 0)} in live auto bids"
            )
    missing = set(live) - set(orders)
    if missing:
        raise RecoveryError(f"live auto bids of orders not restored: {sorted(missing)[:5]}")


class SessionsRunning(Exception):
    """A session whose statement may still commit has not ended yet: the rebuild must wait."""


async def end_sessions(store: Store, sessions: set[Session], timeout_s: float = 5.0) -> None:
    """End the writer's abandoned sessions (`JournalWriter.abandoned_sessions`) and wait until
    they are gone, emptying `sessions`; SessionsRunning if one outlives `timeout_s` (the rebuild
    is retried). Unlike `settle`, no reading before: a statement the server has not read yet has
    no transaction to wait for, and would commit after the books were rebuilt without it."""
    if not sessions:
        return
    ending = sorted(sessions)
    pids = [pid for pid, _ in ending]
    await store.end_sessions(ending)
    waited = await _until_none_run(lambda: store.sessions_running(ending), timeout_s)
    if waited is None:
        raise SessionsRunning(
            f"journal sessions {pids} still run {timeout_s} s after pg_terminate_backend"
            " (a backend process stopped or stuck?): no writes until they end"
        )
    log.info("abandoned journal sessions ended", extra={"pids": pids, "waited_s": waited})
    sessions.difference_update(ending)


async def settle(store: Store, timeout_s: float = 10.0) -> None:
    """Wait until every writing transaction running now has ended; then read the journal.

    A process killed by SIGKILL while its COMMIT is in flight leaves a Postgres backend that
    finishes that commit on its own, possibly after the next process started. Read the journal
    before it lands and the books miss those rows, the next seqs collide with theirs, and a
    later replay may not even admit them. Bounded: an unrelated session idling in a transaction
    must not block startup forever.
    """
    running = await store.writing_transactions()
    if not running:
        return
    waited = await _until_none_run(lambda: store.still_running(running), timeout_s)
    if waited is None:
        log.warning("rebuilding while older transactions still run", extra={
            "xids": running, "waited_s": timeout_s,
        })
        return
    log.info("older transactions ended", extra={"xids": running, "waited_s": waited})


async def _until_none_run(running: Callable[[], Awaitable[int]], timeout_s: float) -> float | None:
    """Ask `running()` every 20 ms until it counts none; the seconds that took, or None once
    `timeout_s` have passed with some still running."""
    started = time.monotonic()
    while await running():
        if time.monotonic() - started > timeout_s:
            return None
        await asyncio.sleep(0.02)
    return round(time.monotonic() - started, 3)
