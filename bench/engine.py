"""Benchmark of the pure matching core. Run by hand from the repo root: `python bench/engine.py`.

Measures, in one run:

1. `Engine.place_bid` throughput (best of 5, commands built before timing, gc disabled) and the
   engine's memory per stored bid (tracemalloc; bid ids, lender ids and commands are built before
   tracing starts, so only the engine's own storage is counted), for 1e3, 1e5 and 1e6 bids on one
   listing and for 1e5 and 1e6 bids spread over 1e4 listings.
2. The time to close a 10,000-bid listing with `AdvanceClock` (median of 5), for both pricings.
3. The baseline: raw `SortedList.add` of `(rate, seq)` tuple keys on the same data, timed in turn
   with place_bid (one rep of each, then the next), so the ratio compares like with like.

A readable table goes to stdout as the cases run; the last line is one JSON object.
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
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sortedcontainers import SortedList

from matching import engine as engine_module
from matching import rejections as r
from matching.commands import AdvanceClock, Deposit, ListingTerms, OpenListing, PlaceBid
from matching.engine import Engine
from matching.events import ListingFunded
from matching.rules import MICROS_PER_SECOND, MarketRules, Pricing

SEED = 20240601
T0 = 1_700_000_000 * MICROS_PER_SECOND  # a realistic epoch time in µs
WINDOW_US = 29 * 24 * 3600 * MICROS_PER_SECOND  # generous (max is 30 days): nothing closes
LISTING_AMOUNT = 1_000_000_000  # the maximum the default rules allow
MAX_RATE_BPS = 3_600  # the default legal cap
BID_MIN, BID_MAX = 5_000, 20_000  # min bid is 5_000
N_LENDERS = 1_000
SPREAD_LISTINGS = 10_000
REPS = 5  # throughput: best of REPS, place_bid and SortedList.add in turn
CLOSE_BIDS = 10_000
CLOSE_RUNS = 5  # close: median of CLOSE_RUNS

RULES = MarketRules()
#: What is measured: the core as the install compiled it (setup.py), or its Python source.
CORE = "compiled" if Path(engine_module.__file__ or "").suffix == ".so" else "python source"


def uuid_str(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True, slots=True)
class BidData:
    """The per-bid inputs, shared by the one-listing and the spread case of the same count."""

    bid_ids: list[str]
    lenders: list[str]
    amounts: list[int]
    rates: list[int]
    listing_index: list[int]  # which of the spread listings each bid goes to


def make_bid_data(n: int, lenders: list[str], rng: random.Random) -> BidData:
    return BidData(
        bid_ids=[uuid_str(rng) for _ in range(n)],
        lenders=[lenders[rng.randrange(len(lenders))] for _ in range(n)],
        amounts=[rng.randint(BID_MIN, BID_MAX) for _ in range(n)],
        rates=[rng.randint(1, MAX_RATE_BPS) for _ in range(n)],
        listing_index=[rng.randrange(SPREAD_LISTINGS) for _ in range(n)],
    )


def make_opens(listing_ids: list[str], amount: int, pricing: Pricing = "pay_as_bid") -> list[
    OpenListing
]:
    return [
        OpenListing(
            ListingTerms(
                listing_id=lid, borrower_id=f"borrower-{i}", amount=amount, term_months=36,
                max_rate_bps=MAX_RATE_BPS, grade="B", closes_at=T0 + WINDOW_US, pricing=pricing,
                loan_id=f"loan-{lid}",
            ),
            seq=i + 1, at=T0,
        )
        for i, lid in enumerate(listing_ids)
    ]


def make_bids(data: BidData, listing_ids: list[str], first_seq: int) -> list[PlaceBid]:
    """One PlaceBid per bid; with one listing id they all go there, else by `listing_index`."""
    one = listing_ids[0] if len(listing_ids) == 1 else None
    return [
        PlaceBid(
            listing_id=one if one is not None else listing_ids[data.listing_index[i]],
            bid_id=data.bid_ids[i], lender_id=data.lenders[i], amount=data.amounts[i],
            min_rate_bps=data.rates[i], seq=first_seq + i, at=T0 + 1 + i,
        )
        for i in range(len(data.bid_ids))
    ]


def fresh_engine(opens: list[OpenListing], lenders: list[str]) -> Engine:
    """Listings open and every lender funded far beyond its bids: the ledger is on (each bid
    reserves, each outbid releases) but never refuses."""
    engine = Engine(RULES)
    for cmd in opens:
        out = engine.open_listing(cmd)
        assert isinstance(out, list), out
    for lender in set(lenders):
        engine.deposit(Deposit(lender, f"deposit-{lender}", 10**15, T0, None))
    return engine


def timed(fn: Callable[..., object], *args: object) -> tuple[float, object]:
    """Seconds for one call of `fn(*args)` with the cyclic GC off, and what it returned."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - start, out
    finally:
        gc.enable()


def place_all(engine: Engine, bids: list[PlaceBid]) -> None:
    place = engine.place_bid
    for cmd in bids:
        place(cmd)


def place_bid_seconds(opens: list[OpenListing], bids: list[PlaceBid]) -> float:
    engine = fresh_engine(opens, [b.lender_id for b in bids])
    return timed(place_all, engine, bids)[0]


def add_all(one: SortedList[tuple[int, int]], keys: list[tuple[int, int]]) -> None:
    add = one.add
    for key in keys:
        add(key)


def add_each(adds: list[Callable[[tuple[int, int]], None]], keys: list[tuple[int, int]]) -> None:
    for add, key in zip(adds, keys, strict=True):
        add(key)


def sortedlist_seconds(data: BidData, per_listing: bool, first_seq: int) -> float:
    """Raw SortedList.add of (rate, seq) keys: into one list, or one list per spread listing."""
    keys = [(rate, first_seq + i) for i, rate in enumerate(data.rates)]
    if per_listing:
        lists: list[SortedList[tuple[int, int]]] = [SortedList() for _ in range(SPREAD_LISTINGS)]
        adds = [lists[j].add for j in data.listing_index]
        return timed(add_each, adds, keys)[0]
    one: SortedList[tuple[int, int]] = SortedList()
    return timed(add_all, one, keys)[0]


def best_rates(
    data: BidData, opens: list[OpenListing], bids: list[PlaceBid]
) -> tuple[float, float]:
    """place_bid/s and SortedList.add/s, each the best of REPS, the two taken in turn so that a
    change in the machine's load reaches both sides of the ratio alike."""
    per_listing, first_seq = len(opens) > 1, len(opens) + 1
    place = sortedlist = float("inf")
    for _ in range(REPS):
        place = min(place, place_bid_seconds(opens, bids))
        sortedlist = min(sortedlist, sortedlist_seconds(data, per_listing, first_seq))
    return len(bids) / place, len(bids) / sortedlist


@dataclass(frozen=True, slots=True)
class MemoryResult:
    bytes_books: int  # traced after opening the listings, before any bid
    bytes_total: int  # traced after all bids
    peak: int
    stored: int  # bids kept in the books (accepted; outbid ones stay too)
    resting: int  # bids in a funding set now
    outbid: int
    rejections: dict[str, int]


def measure_memory(opens: list[OpenListing], bids: list[PlaceBid]) -> MemoryResult:
    """Trace only the engine's allocations: everything it is fed exists before tracing starts."""
    codes: Counter[str] = Counter({r.BID_NOT_COMPETITIVE: 0})
    gc.collect()
    gc.disable()
    try:
        tracemalloc.start()
        engine = fresh_engine(opens, [b.lender_id for b in bids])
        bytes_books = tracemalloc.get_traced_memory()[0]
        place = engine.place_bid
        for cmd in bids:
            out = place(cmd)
            if isinstance(out, r.Rejection):
                codes[out.code] += 1
            # Events are dropped here, as the shell would after persisting them.
        del out
        bytes_total, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        gc.enable()
    books = engine._books.values()
    return MemoryResult(
        bytes_books=bytes_books,
        bytes_total=bytes_total,
        peak=peak,
        stored=sum(b.bid_count for b in books),
        resting=sum(len(b.in_funding_set()) for b in books),  # walked: `run_case` checks it adds up
        outbid=sum(len(b.outbid) for b in books),
        rejections=dict(codes),
    )


def fmt_n(n: int) -> str:
    return f"1e{len(str(n)) - 1}" if n >= 1000 and str(n).strip("0") == "1" else str(n)


def run_case(
    name: str, data: BidData, listing_ids: list[str], table: list[str]
) -> dict[str, Any]:
    opens = make_opens(listing_ids, LISTING_AMOUNT)
    first_seq = len(opens) + 1
    bids = make_bids(data, listing_ids, first_seq)
    n = len(bids)
    rate, baseline = best_rates(data, opens, bids)
    mem = measure_memory(opens, bids)
    del bids, opens
    gc.collect()
    rejected = sum(mem.rejections.values())
    assert mem.stored + rejected == n, (mem.stored, rejected, n)
    assert mem.resting + mem.outbid == mem.stored
    per_stored = mem.bytes_total / mem.stored
    per_stored_excl = (mem.bytes_total - mem.bytes_books) / mem.stored
    per_funding = mem.bytes_total / mem.resting if mem.resting else float("nan")
    row = (
        f"{name:<22}{fmt_n(n):>6}{len(listing_ids):>7}{rate:>12,.0f}{baseline:>12,.0f}"
        f"{rate / baseline:>7.3f}{mem.stored:>9}{mem.resting:>9}{mem.outbid:>9}"
        f"{rejected:>9}{per_stored:>9.1f}{per_stored_excl:>9.1f}{mem.bytes_total / 2**20:>9.1f}"
    )
    table.append(row)
    print(row, flush=True)
    return {
        "bids": n,
        "listings": len(listing_ids),
        "place_bid_per_s": round(rate),
        "sortedlist_add_per_s": round(baseline),
        "sortedlist_baseline": "one SortedList" if len(listing_ids) == 1
        else "one SortedList per listing",
        "ratio": round(rate / baseline, 4),
        "accepted_stored": mem.stored,
        "resting_in_funding_set": mem.resting,
        "outbid": mem.outbid,
        "rejected_not_competitive": mem.rejections.get(r.BID_NOT_COMPETITIVE, 0),
        "rejected_other": {k: v for k, v in mem.rejections.items() if k != r.BID_NOT_COMPETITIVE},
        "tracemalloc_bytes": mem.bytes_total,
        "tracemalloc_bytes_empty_books": mem.bytes_books,
        "tracemalloc_peak_bytes": mem.peak,
        "bytes_per_stored_bid": round(per_stored, 1),
        "bytes_per_stored_bid_excl_empty_books": round(per_stored_excl, 1),
        "bytes_per_funding_set_bid": round(per_funding, 1),
    }


HEADER = (
    f"{'case':<22}{'bids':>6}{'lists':>7}{'place/s':>12}{'SL.add/s':>12}{'ratio':>7}"
    f"{'stored':>9}{'resting':>9}{'outbid':>9}{'rejected':>9}{'B/stored':>9}{'B/st-bk':>9}"
    f"{'MiB':>9}"
)


def close_times_ms(pricing: Pricing, lenders: list[str], rng: random.Random) -> list[float]:
    """Close a listing holding CLOSE_BIDS bids, all in its funding set (amount = their sum)."""
    data = make_bid_data(CLOSE_BIDS, lenders, rng)
    amount = sum(data.amounts)
    assert amount <= RULES.max_listing_amount
    listing_ids = [uuid_str(rng)]
    opens = make_opens(listing_ids, amount, pricing)
    bids = make_bids(data, listing_ids, first_seq=2)
    tick = AdvanceClock(opens[0].terms.closes_at)
    times: list[float] = []
    for _ in range(CLOSE_RUNS):
        engine = fresh_engine(opens, lenders)
        place_all(engine, bids)
        assert len(engine._books[listing_ids[0]].in_funding_set()) == CLOSE_BIDS
        seconds, events = timed(engine.advance_clock, tick)
        times.append(seconds * 1000)
        assert isinstance(events, list) and isinstance(events[0], ListingFunded), events
        assert len(events[0].fills) == CLOSE_BIDS
        del engine, events
    return times


def main() -> None:
    started = time.perf_counter()
    load_before = os.getloadavg()
    rng = random.Random(SEED)
    lenders = [uuid_str(rng) for _ in range(N_LENDERS)]
    spread_ids = [uuid_str(rng) for _ in range(SPREAD_LISTINGS)]
    print(
        f"bench/engine.py  python {platform.python_version()}  core {CORE}  seed {SEED}  "
        f"loadavg {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    print(
        f"listing amount {LISTING_AMOUNT:,}  bids {BID_MIN:,}-{BID_MAX:,}  rates 1-{MAX_RATE_BPS} "
        f"bps uniform  {N_LENDERS:,} lenders  window {WINDOW_US // MICROS_PER_SECOND // 86400} d"
    )
    print(
        "place/s: best of 5, Engine.place_bid only.  SL.add/s: raw SortedList.add of (rate, seq)"
        " tuples, same data\n"
        "  (spread cases: into one SortedList per listing).  stored = accepted bids kept in the"
        " books\n"
        "  (resting in a funding set + outbid).  B/stored = tracemalloc bytes of the engine"
        " / stored"
        " bids;\n  B/st-bk = same without the empty books' own cost (opening the listings).  MiB ="
        " tracemalloc total.\n  spread cases: 10 or 100 bids per 1e9 listing, so no listing fills:"
        " every bid is accepted, none outbid or rejected."
    )
    print(HEADER)
    print("-" * len(HEADER), flush=True)

    table: list[str] = []
    cases: dict[str, dict[str, Any]] = {}
    for n in (1_000, 100_000, 1_000_000):
        data = make_bid_data(n, lenders, rng)
        one_id = [uuid_str(rng)]
        cases[f"one_listing_{fmt_n(n)}"] = run_case("one listing", data, one_id, table)
        if n >= 100_000:
            cases[f"spread_1e4_listings_{fmt_n(n)}"] = run_case(
                "spread over 1e4", data, spread_ids, table
            )
        del data
        gc.collect()

    print()
    print(
        f"close a {CLOSE_BIDS:,}-bid listing (AdvanceClock past its deadline; all {CLOSE_BIDS:,}"
        f" bids in the funding set -> {CLOSE_BIDS:,} fills), median of {CLOSE_RUNS}:"
    )
    close: dict[str, float] = {}
    close_runs: dict[str, list[float]] = {}
    pricings: tuple[Pricing, ...] = ("pay_as_bid", "uniform")
    for pricing in pricings:
        runs = close_times_ms(pricing, lenders, rng)
        close[pricing] = statistics.median(runs)
        close_runs[pricing] = [round(t, 3) for t in runs]
        print(
            f"  {pricing:<11} median {close[pricing]:8.3f} ms   runs "
            + " ".join(f"{t:.3f}" for t in runs),
            flush=True,
        )

    main_case = cases["one_listing_1e5"]
    load_after = os.getloadavg()
    elapsed = time.perf_counter() - started
    print()
    print(
        f"main: 1e5 bids on one listing: place_bid {main_case['place_bid_per_s']:,}/s vs "
        f"SortedList.add {main_case['sortedlist_add_per_s']:,}/s (ratio {main_case['ratio']}); "
        f"{main_case['bytes_per_stored_bid']} B per stored bid"
    )
    print(
        "bytes_per_resting_bid = tracemalloc bytes / bids stored in the book (accepted, incl. "
        "outbid, which stay in memory), not / funding-set size"
    )
    print(
        f"elapsed {elapsed:.1f} s  loadavg after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f}",
        flush=True,
    )
    result = {
        "place_bid_per_s": main_case["place_bid_per_s"],
        "sortedlist_add_per_s": main_case["sortedlist_add_per_s"],
        "ratio": main_case["ratio"],
        "bytes_per_resting_bid": main_case["bytes_per_stored_bid"],
        "bytes_per_resting_bid_means": "tracemalloc bytes / accepted bids stored in the book "
        "(funding set + outbid), 1e5 bids on one listing",
        "close_10k_ms": round(max(close.values()), 3),
        "close_10k_ms_pay_as_bid": round(close["pay_as_bid"], 3),
        "close_10k_ms_uniform": round(close["uniform"], 3),
        "close_10k_runs_ms": close_runs,
        "cases": cases,
        "config": {
            "seed": SEED,
            "listing_amount": LISTING_AMOUNT,
            "bid_amount_range": [BID_MIN, BID_MAX],
            "max_rate_bps": MAX_RATE_BPS,
            "lenders": N_LENDERS,
            "spread_listings": SPREAD_LISTINGS,
            "throughput_reps": REPS,
            "close_runs": CLOSE_RUNS,
            "python": platform.python_version(),
            "core": CORE,
        },
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "elapsed_s": round(elapsed, 1),
    }
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
