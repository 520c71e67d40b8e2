"""Benchmark of automatic bidding. Run by hand from the repo root: `python bench/orders.py`.

Opens listings where k of N standing orders bid, for N = 1e4 and 1e5 orders and k = 1e2 and
1e3, and times `Engine.open_listing` (the opening, its k auto bids, and the k orders moving to
the back of the queue). The N orders are "idle or matching": a quarter match every listing
(they take turns: each opening's auto-bid cap has room for exactly k of them), the rest miss on
grade, term or rate. Orders are created in a random mix, so the matching ones' tickets are
scattered among the others. Two rate profiles: "spread" (every rate from 5 % to 20 %: many
sparse rate levels, the index's worst case) and "menu" (five round rates, as lenders pick).

The cost must grow with k, not N: at the same k, N = 1e5 within 1.5x of N = 1e4. The two
markets of a profile are built first and their openings alternate, so a change in the
machine's load falls on both alike.

Beside it, the naive way (what the reference engine does): scan all N orders, keep the
matching ones, sort them by ticket. It grows with N.

A readable table goes to stdout; the last line is one JSON object.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from matching.commands import CreateStandingOrder, Deposit, ListingTerms, OpenListing
from matching.engine import Engine
from matching.events import BidPlaced, ListingOpened
from matching.rules import MICROS_PER_SECOND, Grade, MarketRules

SEED = 20261128
T0 = 1_700_000_000 * MICROS_PER_SECOND
WINDOW_US = 29 * 24 * 3600 * MICROS_PER_SECOND
AMOUNT_PER_LISTING = 10_000
LENDERS = 1_000
OPENS = 30  # openings timed per case; the median is reported
MATCHING_SHARE = 4  # one order in MATCHING_SHARE matches every listing
SIZES = (10_000, 100_000)
BIDDERS = (100, 1_000)

RULES = MarketRules()
OTHER_GRADES: tuple[Grade, ...] = ("AA", "A", "C", "D", "E", "HR")


RATE_PROFILES = ("spread", "menu")
MENU = (800, 1_000, 1_200, 1_500, 1_800)


def order_command(
    i: int, matching: bool, rng: random.Random, profile: str
) -> CreateStandingOrder:
    """A matching order (grade B, a term range holding 36, a rate under 2000) or one that
    misses on exactly one of grade, term or rate."""
    grades: tuple[Grade, ...] = ("B",) if rng.random() < 0.5 else ("A", "B", "C")
    term_min, term_max = rng.randint(1, 36), rng.randint(36, 60)
    rate = rng.randint(500, 2_000) if profile == "spread" else rng.choice(MENU)
    if not matching:
        miss = rng.randrange(3)
        if miss == 0:
            grades = (rng.choice(OTHER_GRADES),)
        elif miss == 1:
            term_min, term_max = sorted((rng.randint(1, 35), rng.randint(1, 35)))
        else:
            rate = rng.randint(2_001, 3_600) if profile == "spread" else 2_400
    return CreateStandingOrder(
        f"order-{i}", f"lender-{i % LENDERS}", grades, term_min, term_max, rate,
        AMOUNT_PER_LISTING, 10**12, i + 1, T0,
    )


def listing(k: int, seq: int) -> OpenListing:
    """A grade-B, 36-month listing at most 2000 bps whose auto-bid cap (8000 bps) holds k bids."""
    amount = k * AMOUNT_PER_LISTING * 10_000 // 8_000
    terms = ListingTerms(
        f"listing-{seq}", f"borrower-{seq}", amount, 36, 2_000, "B", T0 + WINDOW_US,
        loan_id=f"loan-{seq}",
    )
    return OpenListing(terms, seq, T0)


def build(
    n: int, rng: random.Random, profile: str
) -> tuple[Engine, list[CreateStandingOrder]]:
    engine = Engine(RULES)
    for lender in range(LENDERS):
        engine.deposit(Deposit(f"lender-{lender}", f"deposit-{lender}", 10**15, T0, None))
    commands = [
        order_command(i, rng.randrange(MATCHING_SHARE) == 0, rng, profile) for i in range(n)
    ]
    for command in commands:
        assert isinstance(engine.change_standing_order(command), list)
    return engine, commands


def time_opening(engine: Engine, k: int, seq: int) -> float:
    """Seconds to open one listing that k orders bid on (the next k in the queue)."""
    command = listing(k, seq)
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        events = engine.open_listing(command)
        seconds = time.perf_counter() - started
    finally:
        gc.enable()
    assert isinstance(events, list) and isinstance(events[0], ListingOpened)
    assert sum(isinstance(e, BidPlaced) for e in events) == k, "k orders bid"
    return seconds


def naive_scan_seconds(commands: list[CreateStandingOrder]) -> float:
    """The reference engine's way: test every order, sort the matching ones by ticket."""
    tickets = {c.order_id: i for i, c in enumerate(commands)}
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        found = sorted(
            (c for c in commands
             if "B" in c.grades and c.term_months_min <= 36 <= c.term_months_max
             and c.min_rate_bps <= 2_000),
            key=lambda c: tickets[c.order_id],
        )
        best = min(best, time.perf_counter() - started)
        assert found
    return best


def main() -> None:
    load_before = os.getloadavg()
    started = time.perf_counter()
    rng = random.Random(SEED)
    print(f"bench/orders.py  python {platform.python_version()}  seed {SEED}  loadavg "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(f"N orders, 1 in {MATCHING_SHARE} matching; k bid per opening; median of {OPENS}"
          " openings; naive = scan all N and sort the matching (best of 5)")
    header = (
        f"{'rates':>7}{'N':>8}{'k':>7}{'ms/open':>10}{'us/bid':>9}{'p90 ms':>9}{'naive ms':>10}"
    )
    print(header)
    print("-" * len(header), flush=True)
    cases: dict[str, dict[str, Any]] = {}
    ratios: dict[str, float] = {}
    for profile in RATE_PROFILES:
        run_profile(profile, rng, cases, ratios)
        gc.unfreeze()
        gc.collect()
    load_after = os.getloadavg()
    print(f"\nN=1e5 over N=1e4 at the same k: {ratios} (target <= 1.5)")
    print(f"elapsed {time.perf_counter() - started:.1f} s  loadavg after {load_after[0]:.2f} "
          f"{load_after[1]:.2f} {load_after[2]:.2f}")
    print(json.dumps({
        "cases": cases, "ratio_1e5_over_1e4": ratios,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "python": platform.python_version(), "seed": SEED,
    }, separators=(",", ":")))


def run_profile(
    profile: str, rng: random.Random, cases: dict[str, dict[str, Any]],
    ratios: dict[str, float],
) -> None:
    markets = {n: build(n, rng, profile) for n in SIZES}
    naive = {n: naive_scan_seconds(commands) for n, (_, commands) in markets.items()}
    gc.freeze()  # the markets leave the collector's scans: each opening collects only its own
    seq = 10 * max(SIZES)
    for k in BIDDERS:
        times: dict[int, list[float]] = {n: [] for n in SIZES}
        for _ in range(OPENS):
            seq += k + 1
            for n, (engine, _) in markets.items():
                times[n].append(time_opening(engine, k, seq))
        for n in SIZES:
            median = statistics.median(times[n])
            p90 = statistics.quantiles(times[n], n=10)[-1]
            cases[f"{profile}_N{n}_k{k}"] = {
                "rates": profile, "orders": n, "bidders": k,
                "median_ms": round(median * 1e3, 3), "p90_ms": round(p90 * 1e3, 3),
                "us_per_auto_bid": round(median * 1e6 / k, 2),
                "naive_scan_ms": round(naive[n] * 1e3, 3),
            }
            print(f"{profile:>7}{n:>8}{k:>7}{median * 1e3:>10.3f}{median * 1e6 / k:>9.2f}"
                  f"{p90 * 1e3:>9.3f}{naive[n] * 1e3:>10.3f}", flush=True)
        small, large = (cases[f"{profile}_N{n}_k{k}"]["median_ms"] for n in SIZES)
        ratios[f"{profile}_k{k}"] = round(large / small, 3)


if __name__ == "__main__":
    main()
