"""The engine as a whole: opening listings (docs/rules.md, "Listing"), housekeeping, determinism.

Unless a test says otherwise the listing is "L1": amount 100,000, max rate 2,000 bps, all or
nothing, closing at CLOSES_AT (an hour after T0).
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from matching import (
    AcceptEarly,
    AdvanceClock,
    BidOutbid,
    BidPlaced,
    CancelListing,
    Command,
    Deposit,
    Engine,
    LedgerEntry,
    ListingCancelled,
    ListingFailed,
    ListingFunded,
    ListingOpened,
    ListingTerms,
    MarketRules,
    OpenListing,
    PlaceBid,
    Rejection,
    Withdraw,
)
from matching.rules import PRICINGS, Grade, Pricing
from tests.unit.builders import (
    CLOSED_MARKETS,
    CLOSES_AT,
    DAY,
    HOUR,
    SECOND,
    T0,
    Market,
    events,
    listing_terms,
    market,
    only,
    rejected,
)

# --- opening a listing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "code", "field"),
    [
        pytest.param(listing_terms(amount=99_999), "amount_out_of_range", "amount",
                     id="amount below 100,000"),
        pytest.param(listing_terms(amount=1_000_000_001), "amount_out_of_range", "amount",
                     id="amount above 1,000,000,000"),
        pytest.param(listing_terms(term_months=0), "term_out_of_range", "term_months",
                     id="term 0"),
        pytest.param(listing_terms(term_months=61), "term_out_of_range", "term_months",
                     id="term 61"),
        pytest.param(listing_terms(max_rate_bps=0), "rate_out_of_range", "max_rate_bps",
                     id="max rate 0"),
        pytest.param(listing_terms(max_rate_bps=3_601), "rate_out_of_range", "max_rate_bps",
                     id="max rate above the legal cap"),
        pytest.param(listing_terms(closes_at=T0 + SECOND - 1), "window_out_of_range",
                     "closes_at", id="window below 1 s"),
        pytest.param(listing_terms(closes_at=T0 + 30 * DAY + 1), "window_out_of_range",
                     "closes_at", id="window above 30 days"),
        pytest.param(listing_terms(closes_at=T0), "window_out_of_range", "closes_at",
                     id="closes when it opens"),
        pytest.param(listing_terms(min_funding_bps=0), "min_funding_out_of_range",
                     "min_funding_bps", id="min funding 0"),
        pytest.param(listing_terms(min_funding_bps=10_001), "min_funding_out_of_range",
                     "min_funding_bps", id="min funding 10001"),
        pytest.param(listing_terms(grade=cast(Grade, "Z")), "unknown_grade", "grade",
                     id="unknown grade"),
        pytest.param(listing_terms(pricing=cast(Pricing, "dutch")), "unknown_pricing", "pricing",
                     id="unknown pricing"),
    ],
)
def test_invalid_listing_is_rejected_with_its_code_and_changes_nothing(
    terms: ListingTerms, code: str, field: str
) -> None:
    m = Market()
    assert rejected(m.open(terms), code).field == field
    assert m.engine.summary("L1") is None
    assert m.engine.next_deadline() is None
    assert m.engine.open_listing_ids() == []


@pytest.mark.parametrize(
    "terms",
    [
        pytest.param(listing_terms(amount=100_000), id="amount 100,000"),
        pytest.param(listing_terms(amount=1_000_000_000), id="amount 1,000,000,000"),
        pytest.param(listing_terms(term_months=1), id="term 1"),
        pytest.param(listing_terms(term_months=60), id="term 60"),
        pytest.param(listing_terms(max_rate_bps=1), id="max rate 1"),
        pytest.param(listing_terms(max_rate_bps=3_600), id="max rate at the legal cap"),
        pytest.param(listing_terms(closes_at=T0 + SECOND), id="window 1 s"),
        pytest.param(listing_terms(closes_at=T0 + 30 * DAY), id="window 30 days"),
        pytest.param(listing_terms(min_funding_bps=1), id="min funding 1"),
        pytest.param(listing_terms(grade="HR", pricing="uniform"), id="grade HR, uniform"),
    ],
)
def test_listing_at_each_limit_opens(terms: ListingTerms) -> None:
    m = Market()
    assert events(m.open(terms)) == [ListingOpened(terms, 1, T0)]
    summary = m.summary()
    assert (summary.terms, summary.status, summary.funded_amount) == (terms, "open", 0)
    assert m.engine.next_deadline() == terms.closes_at


def test_duplicate_listing_id_is_rejected_and_the_first_listing_is_untouched() -> None:
    m = market()
    m.place(30_000, 1_000)
    before = m.summary()
    rejected(m.open(listing_terms(amount=200_000, closes_at=T0 + 2 * DAY)), "listing_exists")
    assert m.summary() == before
    assert m.engine.next_deadline() == CLOSES_AT


def test_limits_come_from_the_market_rules() -> None:
    rules = MarketRules(min_listing_amount=1_000, legal_rate_cap_bps=2_400, min_bid_amount=100,
                        max_term_months=36, max_window_us=DAY)
    m = Market(rules)
    rejected(m.open(listing_terms(max_rate_bps=2_401)), "rate_out_of_range")
    rejected(m.open(listing_terms(term_months=37)), "term_out_of_range")
    rejected(m.open(listing_terms(closes_at=T0 + DAY + 1)), "window_out_of_range")
    events(m.open(listing_terms(amount=1_000, max_rate_bps=2_400, term_months=36)))
    rejected(m.bid(99, 1_000), "bid_below_minimum")
    assert m.view(m.place(100, 1_000)).allocated_amount == 100


# --- housekeeping -------------------------------------------------------------------------------


@pytest.mark.parametrize("close", [pytest.param(c, id=n) for n, c in CLOSED_MARKETS])
def test_release_forgets_a_closed_listing(close: Callable[[], Market]) -> None:
    m = close()
    m.engine.release("L1")
    m.engine.check_invariants()
    engine = m.engine
    assert (engine.summary("L1"), engine.bids("L1"), engine.depth("L1")) == (None, None, None)
    assert engine.bid("L1", 2) is None


def test_release_keeps_an_open_listing() -> None:
    m = market()
    seq = m.place(60_000, 1_000)
    m.engine.release("L1")
    m.engine.release("never-opened")
    m.engine.check_invariants()
    assert m.summary().status == "open"
    assert m.view(seq).allocated_amount == 60_000


def test_next_deadline_is_the_earliest_open_closes_at() -> None:
    m = Market()
    assert m.engine.next_deadline() is None
    m.open(listing_terms("a", closes_at=T0 + 2 * HOUR))
    m.open(listing_terms("b", closes_at=T0 + HOUR))
    rejected(m.open(listing_terms("c", closes_at=T0)), "window_out_of_range")
    assert m.engine.next_deadline() == T0 + HOUR
    only(m.cancel("b"), ListingCancelled)
    assert m.engine.next_deadline() == T0 + 2 * HOUR
    only(m.advance(T0 + 2 * HOUR), ListingFailed)
    assert m.engine.next_deadline() is None


# --- determinism --------------------------------------------------------------------------------


def random_commands(seed: int, count: int = 600) -> list[Command]:
    """Listings opening over time and a stream of bids, acceptances, cancels, clock ticks,
    deposits and withdrawals aimed at the three newest listings and nine lenders, some of them
    invalid (a bid or withdrawal beyond the lender's funds among them)."""
    rng = random.Random(seed)
    at = T0
    listing_ids: list[str] = []
    commands: list[Command] = []
    for seq in range(1, count):
        at += rng.randint(0, 2 * SECOND)
        roll = rng.random()
        lender = f"lender-{rng.randint(1, 9)}"
        if roll < 0.08:
            kind = Deposit if roll < 0.07 else Withdraw
            commands.append(kind(lender, f"m{seq}", rng.choice([0, 50_000, 200_000]), at, None))
            continue
        if roll < 0.13 or not listing_ids:
            listing_ids.append(f"L{seq}")
            commands.append(OpenListing(listing_terms(
                listing_ids[-1], amount=rng.choice([100_000, 300_000]),
                closes_at=at + rng.randint(20, 200) * SECOND,
                min_funding_bps=rng.choice([10_000, 7_000]), close_when_funded=rng.random() < 0.3,
                pricing=rng.choice(PRICINGS)), seq, at))
            continue
        listing_id = rng.choice(listing_ids[-3:])
        if roll < 0.9:
            commands.append(PlaceBid(listing_id, f"b{seq}", lender,
                                     rng.choice([4_000, 5_000, 20_000, 50_000, 120_000]),
                                     rng.choice([800, 1_000, 1_200, 1_500, 2_000, 2_100]), seq, at))
        elif roll < 0.93:
            commands.append(AcceptEarly(listing_id, seq, at))
        elif roll < 0.94:
            commands.append(CancelListing(listing_id, seq, at))
        else:
            commands.append(AdvanceClock(at))
    return commands


@pytest.mark.parametrize("seed", range(5))
def test_same_commands_give_equal_outcomes_in_two_engines(seed: int) -> None:
    one, two = Engine(MarketRules()), Engine(MarketRules())
    outcomes = []
    commands = random_commands(seed)
    for command in commands:
        outcome = one.execute(command)
        assert two.execute(command) == outcome
        one.check_invariants()
        two.check_invariants()
        outcomes.append(outcome)
    kinds = {type(e) for o in outcomes if not isinstance(o, Rejection) for e in o}
    # The stream exercised the books and every way to close, not just rejections.
    assert {
        BidPlaced, BidOutbid, ListingFunded, ListingFailed, ListingCancelled, LedgerEntry
    } <= kinds
    for listing_id in {c.terms.listing_id for c in commands if isinstance(c, OpenListing)}:
        assert one.summary(listing_id) == two.summary(listing_id)
        assert one.bids(listing_id) == two.bids(listing_id)


def outcome_digest(seed: int) -> str:
    """sha256 of the reprs of every outcome of `random_commands(seed)` on a fresh engine."""
    engine = Engine(MarketRules())
    digest = hashlib.sha256()
    for command in random_commands(seed):
        digest.update(repr(engine.execute(command)).encode())
        engine.check_invariants()
    return digest.hexdigest()


def test_same_commands_give_equal_outcomes_in_processes_with_other_hash_seeds() -> None:
    # A restart replays the journal in a new process, where str hashes (and so set order) differ.
    script = f"from {__name__} import outcome_digest; print(outcome_digest(3))"
    digests = {
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=Path(__file__).parents[2],
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert digests == {outcome_digest(3)}
