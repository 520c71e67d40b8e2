"""Rebuilding the books from Postgres: replay every open listing and its bids in seq order."""

import asyncio
import logging
import time
from typing import Any

from app.clock import to_micros
from app.store import Store
from matching import Engine, ListingTerms, MarketRules, OpenListing, PlaceBid, Rejection

log = logging.getLogger(__name__)


class RecoveryError(Exception):
    """The journal does not replay: stored state breaks the rules. Needs a human."""


def open_command(row: Any) -> OpenListing:
    terms = ListingTerms(
        str(row["id"]), row["borrower_id"], row["amount"], row["term_months"],
        row["max_rate_bps"], row["grade"], to_micros(row["closes_at"]), row["min_funding_bps"],
        row["close_when_funded"], row["pricing"],
    )
    return OpenListing(terms, row["seq"], to_micros(row["opened_at"]))


def bid_command(row: Any) -> PlaceBid:
    return PlaceBid(
        str(row["listing_id"]), str(row["id"]), row["lender_id"], row["amount"],
        row["min_rate_bps"], row["seq"], to_micros(row["placed_at"]),
    )


async def rebuild(store: Store, rules: MarketRules) -> tuple[Engine, int]:
    """A fresh engine holding every open book, and the highest seq ever stored.

    Replay uses the rules of the time each command was accepted only through the stored rows:
    the market rules are relaxed to the widest so a config change cannot reject old listings.
    """
    await settle(store)
    listings, bids = await store.open_journal()
    engine = Engine(replay_rules(rules))
    commands: list[OpenListing | PlaceBid] = [open_command(r) for r in listings]
    commands.extend(bid_command(r) for r in bids)
    commands.sort(key=lambda c: c.seq)
    for command in commands:
        outcome = engine.execute(command)
        if isinstance(outcome, Rejection):
            raise RecoveryError(f"journal does not replay at {command}: {outcome}")
    engine.rules = rules
    return engine, await store.max_seq()


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


def replay_rules(rules: MarketRules) -> MarketRules:
    """Everything stored was admitted under the rules of its day; replay re-checks only the book."""
    return MarketRules(
        min_listing_amount=1, max_listing_amount=2**62, min_window_us=-(2**62),
        max_window_us=2**62, min_bid_amount=1, legal_rate_cap_bps=2**31 - 1,
        max_term_months=rules.max_term_months,
    )
