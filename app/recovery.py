"""Rebuilding the books from Postgres: replay every open listing and its bids in seq order."""

from typing import Any

from app.clock import to_micros
from app.store import Store
from matching import Engine, ListingTerms, MarketRules, OpenListing, PlaceBid, Rejection


class RecoveryError(Exception):
    """The journal does not replay: stored state breaks the rules. Needs a human."""


def _open_command(row: Any) -> OpenListing:
    terms = ListingTerms(
        str(row["id"]), row["borrower_id"], row["amount"], row["term_months"],
        row["max_rate_bps"], row["grade"], to_micros(row["closes_at"]), row["min_funding_bps"],
        row["close_when_funded"], row["pricing"],
    )
    return OpenListing(terms, row["seq"], to_micros(row["opened_at"]))


def _bid_command(row: Any) -> PlaceBid:
    return PlaceBid(
        str(row["listing_id"]), str(row["id"]), row["lender_id"], row["amount"],
        row["min_rate_bps"], row["seq"], to_micros(row["placed_at"]),
    )


async def rebuild(store: Store, rules: MarketRules) -> tuple[Engine, int]:
    """A fresh engine holding every open book, and the highest seq ever stored.

    Replay uses the rules of the time each command was accepted only through the stored rows:
    the market rules are relaxed to the widest so a config change cannot reject old listings.
    """
    listings, bids = await store.open_journal()
    engine = Engine(_replay_rules(rules))
    commands: list[OpenListing | PlaceBid] = [_open_command(r) for r in listings]
    commands.extend(_bid_command(r) for r in bids)
    commands.sort(key=lambda c: c.seq)
    for command in commands:
        outcome = engine.execute(command)
        if isinstance(outcome, Rejection):
            raise RecoveryError(f"journal does not replay at {command}: {outcome}")
    engine.rules = rules
    return engine, await store.max_seq()


def _replay_rules(rules: MarketRules) -> MarketRules:
    return MarketRules(
        min_listing_amount=1, max_listing_amount=2**62, min_window_us=-(2**62),
        max_window_us=2**62, min_bid_amount=1, legal_rate_cap_bps=2**31 - 1,
        max_term_months=rules.max_term_months,
    )
