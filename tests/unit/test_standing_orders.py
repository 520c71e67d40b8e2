"""Standing orders: when a listing opens, the matching orders bid in queue order inside the same
command, within their budget, their lender's money, the share caps and the auto-bid cap.
The builders' `Market` checks every invariant (orders' reserved = live auto bids, the index holds
exactly the orders that may bid) after every command."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from matching import (
    BidPlaced,
    ListingFunded,
    ListingOpened,
    ListingPolicy,
    Outcome,
    StandingOrderChanged,
)
from matching.autobid import auto_bid_id
from matching.rules import Grade
from tests.unit.builders import (
    CLOSES_AT,
    HOUR,
    NO_POLICY,
    Market,
    events,
    listing_terms,
    only,
    rejected,
)

LENA, LEO, MAX = "lena", "leo", "max"
RICH = 10**9


def funded(*lenders: str, amount: int = RICH) -> Market:
    m = Market(auto_fund=False)
    for lender in lenders:
        events(m.deposit(lender, amount))
    return m


def auto_bids(outcome: object) -> list[tuple[str | None, int, int]]:
    """(order, amount, rate) of each bid an opening placed, in the order they were placed."""
    assert isinstance(outcome, list)
    return [
        (e.standing_order_id, e.amount, e.rate_bps) for e in outcome if isinstance(e, BidPlaced)
    ]


# --- the queue ----------------------------------------------------------------------------------


def test_orders_that_bid_go_to_the_back_so_the_queue_rotates_across_listings() -> None:
    m = funded(LENA, LEO, MAX)
    for order_id, lender in (("O1", LENA), ("O2", LEO), ("O3", MAX)):
        events(m.order(lender, order_id=order_id, amount_per_listing=40_000))
    # 100,000 listings, 8,000 bps for auto bids: room for two 40,000 bids each.
    assert [o for o, _, _ in auto_bids(m.open(listing_terms("L1")))] == ["O1", "O2"]
    assert [o for o, _, _ in auto_bids(m.open(listing_terms("L2")))] == ["O3", "O1"]
    assert [o for o, _, _ in auto_bids(m.open(listing_terms("L3")))] == ["O2", "O3"]
    assert [o for o, _, _ in auto_bids(m.open(listing_terms("L4")))] == ["O1", "O2"]


def test_the_cap_reached_mid_queue_gives_the_last_order_only_what_is_left() -> None:
    m = funded(LENA, LEO, MAX, "mia")
    for order_id, lender in (("O1", LENA), ("O2", LEO), ("O3", MAX), ("O4", "mia")):
        events(m.order(lender, order_id=order_id, amount_per_listing=30_000))
    outcome = m.open(listing_terms("L1"))
    assert auto_bids(outcome) == [("O1", 30_000, 1_000), ("O2", 30_000, 1_000),
                                  ("O3", 20_000, 1_000)]
    opened = only(outcome, ListingOpened)
    assert (opened.auto_bid_count, opened.auto_bid_amount) == (3, 80_000)
    summary = m.summary("L1")
    assert (summary.auto_bid_count, summary.auto_bid_amount) == (3, 80_000)
    assert summary.funded_amount == 80_000, "a fifth is left for manual bidders"
    assert m.standing_order("O4").ticket < m.standing_order("O1").ticket, "O4 is next"


def test_an_order_that_would_bid_less_than_the_minimum_is_skipped_and_keeps_its_place() -> None:
    m = funded(LENA, LEO)
    events(m.deposit(MAX, 4_999))
    for order_id, lender in (("O1", MAX), ("O2", LENA), ("O3", LEO)):
        events(m.order(lender, order_id=order_id, amount_per_listing=40_000))
    assert [o for o, _, _ in auto_bids(m.open(listing_terms("L1")))] == ["O2", "O3"]
    events(m.deposit(MAX, 1))
    assert auto_bids(m.open(listing_terms("L2")))[0] == ("O1", 5_000, 1_000)


def test_auto_bids_take_the_seqs_after_their_listing_and_ids_derived_from_the_pair() -> None:
    m = funded(LENA, LEO)
    events(m.order(LENA, order_id="O1", amount_per_listing=20_000))
    events(m.order(LEO, order_id="O2", amount_per_listing=20_000))
    outcome = events(m.open(listing_terms("L1")))
    opened = only(outcome, ListingOpened)
    placed = [e for e in outcome if isinstance(e, BidPlaced)]
    assert [p.seq for p in placed] == [opened.seq + 1, opened.seq + 2]
    assert [p.bid_id for p in placed] == [auto_bid_id("L1", "O1"), auto_bid_id("L1", "O2")]
    uuid_v8 = r"^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    assert all(re.match(uuid_v8, p.bid_id) for p in placed)
    manual = only(m.bid(10_000, 1_500, lender=LENA), BidPlaced)
    assert manual.seq == opened.seq + 3, "the next command continues after them"
    assert manual.standing_order_id is None


def test_an_auto_bid_keeps_the_accounts_copy_of_the_lenders_id_not_the_orders() -> None:
    """The order was created from its own request (its own copy of the id); its bids' book
    keeps the account's copy, as a manual bid's does (tests/unit/test_ledger.py)."""
    m = funded(LENA)
    order_copy = "".join(LENA)
    assert order_copy is not LENA
    events(m.order(order_copy, order_id="O1", amount_per_listing=20_000))
    assert auto_bids(m.open(listing_terms("L1"))) == [("O1", 20_000, 1_000)]
    held = m.engine.ledger.accounts[LENA].account_id
    lenders = m.engine._books["L1"].lenders
    assert len(lenders) == 1 and lenders[0] is held


# --- what an order bids -------------------------------------------------------------------------


def test_the_budget_limits_the_bid_and_an_order_without_budget_left_bids_no_more() -> None:
    m = funded(LENA)
    events(m.order(LENA, order_id="O1", amount_per_listing=30_000, budget=50_000))
    assert auto_bids(m.open(listing_terms("L1"))) == [("O1", 30_000, 1_000)]
    assert auto_bids(m.open(listing_terms("L2"))) == [("O1", 20_000, 1_000)]
    assert auto_bids(m.open(listing_terms("L3"))) == []
    order = m.standing_order("O1")
    assert (order.reserved, order.settled, order.budget_left) == (50_000, 0, 0)


def test_a_failed_listing_gives_the_budget_back_and_the_order_bids_again() -> None:
    m = funded(LENA)
    events(m.order(LENA, order_id="O1", amount_per_listing=30_000, budget=30_000))
    events(m.open(listing_terms("L1", closes_at=CLOSES_AT)))
    assert auto_bids(m.open(listing_terms("L2", closes_at=CLOSES_AT + 10))) == []
    outcome = m.advance(CLOSES_AT)  # L1 fails: 30,000 of 100,000
    changed = only(outcome, StandingOrderChanged).order
    assert (changed.reserved, changed.budget_left) == (0, 30_000)
    assert auto_bids(m.open(listing_terms("L3", closes_at=CLOSES_AT + HOUR))) == [
        ("O1", 30_000, 1_000)]


def test_a_fill_is_settled_in_the_budget_and_the_part_left_out_comes_back() -> None:
    m = funded(LENA, LEO)
    events(m.order(LENA, order_id="O1", amount_per_listing=40_000, budget=100_000))
    events(m.open(listing_terms("L1", min_funding_bps=5_000)))
    m.bid(60_000, 900, lender=LEO)  # cheaper: covers 60,000, O1's bid is marginal
    m.bid(30_000, 900, lender=LEO)  # now 90,000 at 9 %: only 10,000 of O1's 40,000 is needed
    funded_ = only(m.advance(CLOSES_AT), ListingFunded)
    assert [(f.lender_id, f.amount) for f in funded_.fills][-1] == (LENA, 10_000)
    order = m.standing_order("O1")
    assert (order.reserved, order.settled, order.budget_left) == (0, 10_000, 90_000)


def test_the_lenders_available_money_limits_the_bid() -> None:
    m = funded(LEO)
    events(m.deposit(LENA, 12_000))
    events(m.order(LENA, order_id="O1", amount_per_listing=40_000))
    assert auto_bids(m.open(listing_terms("L1"))) == [("O1", 12_000, 1_000)]
    assert (m.available(LENA), m.reserved(LENA)) == (0, 12_000)


def test_two_orders_of_one_lender_share_its_money_in_queue_order() -> None:
    m = funded()
    events(m.deposit(LENA, 45_000))
    events(m.order(LENA, order_id="O1", amount_per_listing=30_000))
    events(m.order(LENA, order_id="O2", amount_per_listing=30_000))
    assert auto_bids(m.open(listing_terms("L1"))) == [("O1", 30_000, 1_000),
                                                      ("O2", 15_000, 1_000)]


def test_the_lender_share_cap_limits_auto_bids_like_any_bid() -> None:
    m = funded(LENA, LEO)
    events(m.order(LENA, order_id="O1", amount_per_listing=20_000))
    events(m.order(LENA, order_id="O2", amount_per_listing=20_000))
    events(m.order(LENA, order_id="O3", amount_per_listing=20_000))
    events(m.order(LEO, order_id="O4", amount_per_listing=20_000))
    capped = ListingPolicy(max_lender_share_bps=3_000)  # at most 30,000 of 100,000 per lender
    assert auto_bids(m.open(listing_terms("L1", policy=capped))) == [
        ("O1", 20_000, 1_000), ("O2", 10_000, 1_000), ("O4", 20_000, 1_000)]
    # O3 had no room under its lender's cap: it was skipped and is now first in the queue.
    assert auto_bids(m.open(listing_terms("L2", policy=capped)))[0] == ("O3", 20_000, 1_000)


def test_an_order_bids_at_its_rate_or_the_grade_floor_whichever_is_higher() -> None:
    m = funded(LENA, LEO)
    events(m.order(LENA, order_id="O1", min_rate_bps=900, amount_per_listing=10_000))
    events(m.order(LEO, order_id="O2", min_rate_bps=1_500, amount_per_listing=10_000))
    floor = ListingPolicy(min_rate_bps=1_200)
    assert auto_bids(m.open(listing_terms("L1", policy=floor))) == [
        ("O1", 10_000, 1_200), ("O2", 10_000, 1_500)]


def test_orders_bid_only_on_their_grades_terms_and_rates() -> None:
    m = funded(LENA)
    events(m.order(LENA, order_id="O1", grades=("A", "C"), term_months=(12, 24),
                   min_rate_bps=1_500))
    no_bids = [
        listing_terms("wrong-grade", grade="B", term_months=12, max_rate_bps=2_000),
        listing_terms("too-short", grade="A", term_months=11, max_rate_bps=2_000),
        listing_terms("too-long", grade="C", term_months=25, max_rate_bps=2_000),
        listing_terms("too-cheap", grade="A", term_months=18, max_rate_bps=1_499),
    ]
    for terms in no_bids:
        assert auto_bids(m.open(terms)) == [], terms.listing_id
    for terms in (
        listing_terms("edges", grade="A", term_months=12, max_rate_bps=1_500),
        listing_terms("other-edge", grade="C", term_months=24, max_rate_bps=3_000),
    ):
        assert auto_bids(m.open(terms)) == [("O1", 10_000, 1_500)], terms.listing_id


def test_only_listings_opened_after_an_order_is_created_get_its_bids() -> None:
    m = funded(LENA)
    events(m.open(listing_terms("L1")))
    events(m.order(LENA, order_id="O1"))
    assert m.bids("L1") == []
    assert [b.standing_order_id for b in m.bids("L1")] == []
    assert auto_bids(m.open(listing_terms("L2"))) == [("O1", 10_000, 1_000)]


def test_with_no_room_under_the_auto_bid_cap_nobody_bids_and_nobody_moves() -> None:
    m = funded(LENA)
    events(m.order(LENA, order_id="O1"))
    ticket = m.standing_order("O1").ticket
    tight = ListingPolicy(autobid_max_share_bps=499)  # 4,990 of 100,000: below the minimum bid
    assert auto_bids(m.open(listing_terms("L1", policy=tight))) == []
    assert m.standing_order("O1").ticket == ticket


# --- auto bids are ordinary bids ----------------------------------------------------------------


def test_an_auto_bid_can_be_outbid_and_its_budget_comes_back() -> None:
    m = funded(LENA, LEO)
    events(m.order(LENA, order_id="O1", min_rate_bps=1_800, amount_per_listing=80_000,
                   budget=80_000))
    events(m.open(listing_terms("L1")))
    assert m.standing_order("O1").budget_left == 0
    outcome = m.bid(100_000, 1_000, lender=LEO)
    changed = only(outcome, StandingOrderChanged).order
    assert (changed.reserved, changed.budget_left) == (0, 80_000)
    auto = next(b for b in m.bids("L1") if b.standing_order_id == "O1")
    assert auto.status == "outbid"
    assert auto_bids(m.open(listing_terms("L2"))) == [("O1", 80_000, 1_800)]


def test_with_a_full_auto_bid_cap_a_listing_closing_when_funded_closes_at_once() -> None:
    m = funded(LENA, LEO)
    events(m.order(LENA, order_id="O1", amount_per_listing=60_000))
    events(m.order(LEO, order_id="O2", amount_per_listing=60_000))
    whole = ListingPolicy(autobid_max_share_bps=10_000)
    outcome = m.open(listing_terms("L1", policy=whole, close_when_funded=True))
    funded_ = only(outcome, ListingFunded)
    assert [(f.bid_id, f.amount) for f in funded_.fills] == [
        (auto_bid_id("L1", "O1"), 60_000), (auto_bid_id("L1", "O2"), 40_000)]
    assert m.standing_order("O2").settled == 40_000


# --- pause, resume, budget, delete ----------------------------------------------------------------


def test_a_paused_order_does_not_bid_and_when_resumed_keeps_its_place() -> None:
    m = funded(LENA, LEO)
    events(m.order(LENA, order_id="O1", amount_per_listing=40_000))
    events(m.order(LEO, order_id="O2", amount_per_listing=40_000))
    events(m.update_order("O1", active=False))
    assert [o for o, _, _ in auto_bids(m.open(listing_terms("L1")))] == ["O2"]
    changed = only(m.update_order("O1", active=True), StandingOrderChanged).order
    assert changed.active and changed.ticket < m.standing_order("O2").ticket
    assert [o for o, _, _ in auto_bids(m.open(listing_terms("L2")))] == ["O1", "O2"]


def test_raising_the_budget_lets_an_exhausted_order_bid_again() -> None:
    m = funded(LENA)
    events(m.order(LENA, order_id="O1", amount_per_listing=20_000, budget=20_000))
    events(m.open(listing_terms("L1")))
    assert auto_bids(m.open(listing_terms("L2"))) == []
    events(m.update_order("O1", budget=50_000))
    assert auto_bids(m.open(listing_terms("L3"))) == [("O1", 20_000, 1_000)]


def test_lowering_the_budget_below_what_is_committed_stops_the_order() -> None:
    m = funded(LENA)
    events(m.order(LENA, order_id="O1", amount_per_listing=20_000, budget=100_000))
    events(m.open(listing_terms("L1")))
    changed = only(m.update_order("O1", budget=20_000), StandingOrderChanged).order
    assert (changed.budget, changed.reserved, changed.budget_left) == (20_000, 20_000, 0)
    assert auto_bids(m.open(listing_terms("L2"))) == []


def test_a_deleted_order_keeps_its_live_bids_and_bids_no_more() -> None:
    m = funded(LENA, LEO)
    events(m.order(LENA, order_id="O1", min_rate_bps=1_800, amount_per_listing=50_000))
    events(m.open(listing_terms("L1")))
    deleted = only(m.delete_order("O1"), StandingOrderChanged).order
    assert deleted.deleted and deleted.reserved == 50_000
    assert m.engine.standing_order("O1") is None
    live = [b for b in m.bids("L1") if b.standing_order_id == "O1"]
    assert [(b.status, b.amount) for b in live] == [("active", 50_000)]
    assert auto_bids(m.open(listing_terms("L2"))) == []
    # Outbid: the money goes back to the lender; the order has nothing left and is forgotten.
    released = only(m.bid(100_000, 1_000, lender=LEO), StandingOrderChanged).order
    assert (released.deleted, released.reserved) == (True, 0)
    assert m.reserved(LENA) == 0
    rejected(m.delete_order("O1"), "standing_order_not_found")
    rejected(m.update_order("O1", active=True), "standing_order_not_found")


# --- what an order must be ----------------------------------------------------------------------


def test_orders_that_break_a_rule_are_refused_with_the_field_and_change_nothing() -> None:
    m = funded(LENA)
    grade_z = cast(Grade, "Z")
    cases: list[tuple[Callable[[], Outcome], str, str]] = [
        (lambda: m.order(LENA, grades=()), "unknown_grade", "grades"),
        (lambda: m.order(LENA, grades=("B", grade_z)), "unknown_grade", "grades"),
        (lambda: m.order(LENA, term_months=(0, 12)), "term_out_of_range", "term_months_min"),
        (lambda: m.order(LENA, term_months=(12, 61)), "term_out_of_range", "term_months_max"),
        (lambda: m.order(LENA, term_months=(24, 12)), "term_range_inverted", "term_months_min"),
        (lambda: m.order(LENA, min_rate_bps=0), "rate_out_of_range", "min_rate_bps"),
        (lambda: m.order(LENA, min_rate_bps=3_601), "rate_out_of_range", "min_rate_bps"),
        (lambda: m.order(LENA, amount_per_listing=4_999), "bid_below_minimum",
         "amount_per_listing"),
        (lambda: m.order(LENA, amount_per_listing=20_000, budget=19_999),
         "budget_below_amount_per_listing", "budget"),
    ]
    for attempt, code, field in cases:
        assert rejected(attempt(), code).field == field, code
    assert m.engine.orders.all_views() == []
    events(m.order(LENA, order_id="O1"))
    rejected(m.order(LEO, order_id="O1"), "standing_order_exists")
    rejected(m.update_order("O1", budget=9_999), "budget_below_amount_per_listing")
    rejected(m.update_order("nope", active=False), "standing_order_not_found")
    order = m.standing_order("O1")
    assert (order.lender_id, order.budget, order.active, order.ticket) == (
        LENA, 1_000_000, True, 1)


def test_grades_are_kept_best_first_without_repeats() -> None:
    m = funded(LENA)
    events(m.order(LENA, order_id="O1", grades=("HR", "A", "HR", "AA")))
    assert m.standing_order("O1").grades == ("AA", "A", "HR")


def test_a_listing_with_no_policy_lets_auto_bids_cover_eight_tenths_by_default() -> None:
    assert NO_POLICY.autobid_max_share_bps == 8_000
