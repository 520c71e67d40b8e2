"""Placing bids (docs/rules.md, "Bid"): priority, funding set, admission, competitiveness, depth.

Unless a test says otherwise the listing is "L1": amount 100,000, max rate 2,000 bps, all or
nothing, closing an hour after T0.
"""

from __future__ import annotations

import pytest

from matching import BidOutbid, BidPlaced, DepthLevel
from tests.unit.builders import (
    CLOSES_AT,
    T0,
    events,
    market,
    market_events,
    only,
    rejected,
)

# --- priority and the funding set -------------------------------------------------------------


def test_cheaper_bid_ranks_ahead_of_an_earlier_dearer_one() -> None:
    m = market()
    dear = m.place(30_000, 1_500)
    cheap = m.place(30_000, 1_200)
    middle = m.place(30_000, 1_300)
    assert [b.seq for b in m.bids()] == [cheap, middle, dear]


def test_equal_rates_are_funded_in_arrival_order() -> None:
    m = market()
    first = m.place(60_000, 1_000)
    second = m.place(60_000, 1_000)
    assert [b.seq for b in m.bids()] == [first, second]
    assert m.statuses() == {first: ("active", 60_000), second: ("active", 40_000)}


def test_marginal_bid_is_partly_allocated() -> None:
    m = market()
    whole = m.place(70_000, 1_000)
    placed = only(m.bid(50_000, 1_200), BidPlaced)
    assert placed.allocated_amount == 30_000
    assert m.view(placed.seq).allocated_amount == 30_000
    assert m.view(whole).allocated_amount == 70_000
    summary = m.summary()
    assert (summary.funded_amount, summary.bid_count, summary.marginal_rate_bps) == (
        100_000, 2, 1_200)


def test_cheaper_bid_pushes_out_the_dearest() -> None:
    m = market()
    cheap = m.place(50_000, 1_000)
    dear = m.place(50_000, 1_800)
    outcome = m.bid(50_000, 1_500, at=T0 + 7)
    new = m.seq
    assert market_events(outcome) == [
        BidPlaced("L1", f"bid-{new}", f"lender-{new}", 50_000, 1_500, new, T0 + 7, 50_000),
        BidOutbid("L1", f"bid-{dear}", f"lender-{dear}", 50_000, 1_800, dear, T0 + 7, new),
    ]
    assert m.statuses() == {cheap: ("active", 50_000), new: ("active", 50_000), dear: ("outbid", 0)}


def test_one_bid_can_push_out_several_dearest_first() -> None:
    m = market()
    m.place(40_000, 1_000)
    middle = m.place(30_000, 1_600)
    dearest = m.place(30_000, 1_800)
    outbid = [e.seq for e in events(m.bid(60_000, 1_200)) if isinstance(e, BidOutbid)]
    assert outbid == [dearest, middle]


def test_cheaper_bid_pushes_out_the_later_of_two_equal_rate_bids() -> None:
    m = market()
    first = m.place(50_000, 1_500)
    second = m.place(50_000, 1_500)
    assert only(m.bid(50_000, 1_000), BidOutbid).seq == second
    assert m.view(first).status == "active"
    assert m.view(second).status == "outbid"


def test_allocation_dropping_exactly_to_zero_counts_as_outbid() -> None:
    m = market()
    m.place(60_000, 1_000)
    marginal = m.place(50_000, 1_500)  # 40,000 allocated
    only(m.bid(40_000, 1_200), BidOutbid)  # the set now sums to exactly 100,000 without it
    assert m.view(marginal).status == "outbid"
    assert m.view(marginal).allocated_amount == 0


def test_allocation_shrinking_but_not_to_zero_keeps_the_bid_active() -> None:
    m = market()
    m.place(60_000, 1_000)
    marginal = m.place(50_000, 1_500)
    assert not any(isinstance(e, BidOutbid) for e in events(m.bid(35_000, 1_200)))
    assert (m.view(marginal).status, m.view(marginal).allocated_amount) == ("active", 5_000)


def test_outbid_bid_stays_outbid_whatever_happens_later() -> None:
    m = market()
    m.place(50_000, 1_000)
    loser = m.place(50_000, 1_800)
    m.place(50_000, 1_500)
    assert m.view(loser).status == "outbid"
    later = [m.bid(20_000, 1_100), m.bid(30_000, 1_200), m.advance(CLOSES_AT)]
    assert not any(isinstance(e, BidOutbid) and e.seq == loser for o in later for e in events(o))
    assert m.summary().status == "funded"
    assert (m.view(loser).status, m.view(loser).allocated_amount) == ("outbid", 0)


# --- admission checks ---------------------------------------------------------------------------


def test_bid_at_exactly_the_max_rate_is_accepted() -> None:
    m = market()
    assert m.view(m.place(10_000, 2_000)).rate_bps == 2_000


def test_bid_one_bp_above_the_max_rate_is_rejected() -> None:
    assert rejected(market().bid(10_000, 2_001), "rate_above_max").field == "min_rate_bps"


def test_bid_at_a_zero_rate_is_rejected() -> None:
    assert rejected(market().bid(10_000, 0), "rate_out_of_range").field == "min_rate_bps"


def test_bid_below_the_minimum_amount_is_rejected_and_the_minimum_accepted() -> None:
    m = market()
    assert rejected(m.bid(4_999, 1_000), "bid_below_minimum").field == "amount"
    m.place(5_000, 1_000)


def test_bid_above_the_listing_amount_is_rejected_and_the_whole_amount_accepted() -> None:
    m = market()
    assert rejected(m.bid(100_001, 1_000), "bid_above_listing_amount").field == "amount"
    m.place(100_000, 1_000)


def test_bid_at_the_deadline_instant_is_rejected_before_the_timer_fires() -> None:
    m = market()
    rejected(m.bid(10_000, 1_000, at=CLOSES_AT), "listing_not_open")
    assert m.summary().status == "open"  # nobody has advanced the clock: time is checked anyway


def test_bid_one_microsecond_before_the_deadline_is_accepted() -> None:
    m = market()
    assert m.view(m.place(10_000, 1_000, at=CLOSES_AT - 1)).status == "active"


def test_bid_on_an_unknown_listing_is_rejected() -> None:
    rejected(market().bid(10_000, 1_000, listing_id="nope"), "listing_not_found")


# --- competitiveness once fully covered ----------------------------------------------------------


@pytest.mark.parametrize("rate", [1_500, 1_501, 2_000], ids=["equal", "one above", "at max"])
def test_bid_not_below_the_marginal_rate_of_a_covered_listing_is_not_competitive(
    rate: int,
) -> None:
    m = market()
    m.place(60_000, 1_000)
    m.place(50_000, 1_500)  # covered, marginal 1,500 and only partly allocated
    before = (m.summary(), m.bids())
    rejection = rejected(m.bid(10_000, rate), "bid_not_competitive")
    assert (rejection.marginal_rate_bps, rejection.field) == (1_500, "min_rate_bps")
    assert (m.summary(), m.bids()) == before
    assert m.engine.bid("L1", m.seq) is None


def test_bid_strictly_below_the_marginal_rate_is_accepted_and_pushes_out() -> None:
    m = market()
    m.place(50_000, 1_000)
    marginal = m.place(50_000, 1_500)
    assert only(m.bid(50_000, 1_499), BidOutbid).seq == marginal
    assert m.summary().marginal_rate_bps == 1_499


def test_dearer_bid_is_welcome_while_the_listing_is_not_yet_covered() -> None:
    m = market()
    m.place(50_000, 1_000)
    assert m.view(m.place(40_000, 1_900)).allocated_amount == 40_000
    assert m.summary().marginal_rate_bps == 1_900


@pytest.mark.parametrize(
    ("amount", "rate", "listing_id", "at", "code"),
    [
        (10_000, 2_001, "L1", T0, "rate_above_max"),
        (4_999, 1_000, "L1", T0, "bid_below_minimum"),
        (100_001, 1_000, "L1", T0, "bid_above_listing_amount"),
        (10_000, 1_500, "L1", T0, "bid_not_competitive"),
        (10_000, 1_000, "L1", CLOSES_AT, "listing_not_open"),
        (10_000, 1_000, "L2", T0, "listing_not_found"),
    ],
)
def test_rejected_bid_changes_nothing(
    amount: int, rate: int, listing_id: str, at: int, code: str
) -> None:
    m = market()
    m.place(50_000, 1_000)
    m.place(60_000, 1_500)
    before = (m.summary(), m.bids(), m.depth(), m.engine.next_deadline())
    rejected(m.bid(amount, rate, listing_id=listing_id, at=at), code)
    assert (m.summary(), m.bids(), m.depth(), m.engine.next_deadline()) == before


# --- depth ------------------------------------------------------------------------------------


def test_depth_aggregates_bids_by_rate_level_cheapest_first() -> None:
    m = market()
    m.place(40_000, 1_200)
    m.place(30_000, 1_000)
    m.place(30_000, 1_200)
    m.place(20_000, 1_000)  # 120,000 bid: the later 1,200 bid is marginal, 10,000 of it in
    assert m.depth() == [DepthLevel(1_000, 50_000, 2, 50_000), DepthLevel(1_200, 70_000, 2, 50_000)]


def test_depth_keeps_outbid_bids_at_their_level_with_nothing_allocated() -> None:
    m = market()
    m.place(30_000, 1_000)
    m.place(20_000, 1_000)
    m.place(30_000, 1_200)
    m.place(40_000, 1_200)
    m.place(20_000, 1_100)  # pushes out the 40,000 @ 1,200
    assert m.depth() == [
        DepthLevel(1_000, 50_000, 2, 50_000),
        DepthLevel(1_100, 20_000, 1, 20_000),
        DepthLevel(1_200, 70_000, 2, 30_000),
    ]
