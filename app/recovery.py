"""Rebuilding the market from Postgres: the balances as stored, then every open listing and its
bids replayed in seq order (which puts each book back exactly, outbids included).

Bids are replayed without their admission checks and without moving money: they were admitted
when they arrived, and the money they froze is in the stored balances. What ties the two
together is checked before the service takes a write: each lender's reserved money equals its
live bids. Standing orders come back as stored (queue tickets and money included) before the
books, and each order's reserved money must equal its live auto bids too.
"""

import asyncio
import logging
import time
from typing import Any

from app.clock import to_micros
from app.store import Store
from matching import (
    Engine,
    ListingPolicy,
    ListingTerms,
    MarketRules,
    OpenListing,
    PlaceBid,
    StandingOrderView,
)

log = logging.getLogger(__name__)


_YIELD_EVERY = 20_000


class RecoveryError(Exception):
    """The journal does not replay: stored state breaks the rules. Needs a human."""


def open_command(row: Any) -> OpenListing:
    policy = ListingPolicy(
        row["floor_rate_bps"], row["service_fee_bps"], row["reserve_bps"],
        row["max_lender_share_bps"], row["autobid_max_share_bps"],
    )
    terms = ListingTerms(
        str(row["id"]), row["borrower_id"], row["amount"], row["term_months"],
        row["max_rate_bps"], row["grade"], to_micros(row["closes_at"]), row["min_funding_bps"],
        row["close_when_funded"], row["pricing"], policy, loan_id=str(row["loan_id"]),
    )
    return OpenListing(terms, row["seq"], to_micros(row["opened_at"]))


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
    stored = await store.open_journal()
    engine = Engine(rules)
    for row in stored.accounts:
        engine.restore_account(row["id"], row["available"], row["reserved"])
    for row in stored.funded:
        engine.restore_funded_principal(row["borrower_id"], row["principal"])
    engine.restore_entry_numbering(stored.last_entry_id)
    for row in stored.standing_orders:
        engine.restore_standing_order(standing_order(row))
    engine.restore_ticket_numbering(stored.last_ticket)
    auto = {
        str(r["id"]): str(r["standing_order_id"]) for r in stored.bids
        if r["standing_order_id"] is not None
    }
    commands: list[OpenListing | PlaceBid] = [open_command(r) for r in stored.listings]
    commands.extend(bid_command(r) for r in stored.bids)
    commands.sort(key=lambda c: c.seq)
    for done, command in enumerate(commands, start=1):
        if isinstance(command, OpenListing):
            engine.restore_listing(command)
        else:
            engine.restore_bid(command, auto.get(command.bid_id))
        if done % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a long replay must not starve the fence's lease renewal
    _check_reservations(engine)
    _check_standing_orders(engine)
    return engine, await store.max_seq()


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


async def settle(store: Store, timeout_s: float = 10.0) -> None:
    """Wait until every writing transaction running now has ended; then read the journal.

    A process killed by SIGKILL while its COMMIT is in flight leaves a Postgres backend that
    finishes that commit on its own, possibly after the next process started. Read the journal
    before it lands and the books miss those rows, the next seqs collide with theirs, and a
    later replay may not even admit them. Bounded: an unrelated session idling in a transaction
    must not block startup forever.
    """
    running = await store.writing_transactions()
    started = time.monotonic()
    while running and await store.still_running(running):
        if time.monotonic() - started > timeout_s:
            log.warning("rebuilding while older transactions still run", extra={
                "xids": running, "waited_s": timeout_s,
            })
            return
        await asyncio.sleep(0.02)
    if running:
        log.info("older transactions ended", extra={
            "xids": running, "waited_s": round(time.monotonic() - started, 3),
        })
