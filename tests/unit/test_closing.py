"""Closing and resolving listings (docs/rules.md, "Close").

Unless a test says otherwise the listing is "L1": amount 100,000, max rate 2,000 bps, all or
nothing, closing at CLOSES_AT (an hour after T0).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from matching import AdvanceClock, Fill, ListingCancelled, ListingFailed, ListingFunded, Outcome
from tests.unit.builders import (
    CLOSED_MARKETS,
    CLOSES_AT,
    HOUR,
    SECOND,
    T0,
    Market,
    events,
    listing_terms,
    market,
    market_events,
    only,
    rejected,
)

# --- close when funded ------------------------------------------------------------------------


def test_close_when_funded_closes_at_the_covering_bid_in_the_same_outcome() -> None:
    m = market(listing_terms(close_when_funded=True))
    first = m.place(60_000, 1_000, at=T0 + 10)
    assert m.summary().status == "open"
    outcome = market_events(m.bid(60_000, 1_200, at=T0 + 20))
    covering = m.seq
    assert len(outcome) == 2
    assert outcome[1] == ListingFunded(
        "L1", "loan-of-L1", T0 + 20, "fully_funded", 100_000, 1_080, 12, (
            Fill(f"bid-{first}", f"lender-{first}", first, 60_000, 1_000),
            Fill(f"bid-{covering}", f"lender-{covering}", covering, 40_000, 1_200),
        ), 0, 0,
    )
    summary = m.summary()
    assert (summary.status, summary.closed_at, summary.close_reason) == (
        "funded", T0 + 20, "fully_funded")
    assert m.statuses() == {first: ("won", 60_000), covering: ("won", 40_000)}
    assert m.engine.next_deadline() is None


def test_close_when_funded_waits_for_full_coverage_not_min_funding() -> None:
    m = market(listing_terms(close_when_funded=True, min_funding_bps=5_000))
    m.place(60_000, 1_000)
    assert m.summary().status == "open"


def test_listing_keeps_running_after_full_coverage_by_default() -> None:
    m = market()
    m.place(100_000, 1_500)
    assert m.summary().status == "open"
    m.place(50_000, 1_200)  # rates can still be bid down


# --- accept early -------------------------------------------------------------------------------
# amount 100,001 at 7,000 bps needs ceil(70,000.7) = 70,001: a floor would let 70,000 through.


def test_accept_early_below_min_funding_is_rejected_and_the_auction_runs_on() -> None:
    m = market(listing_terms(amount=100_001, min_funding_bps=7_000))
    m.place(70_000, 1_000)
    rejected(m.accept(), "below_min_funding")
    assert m.summary().status == "open"
    m.place(5_000, 1_000)


@pytest.mark.parametrize("covered", [70_001, 70_002], ids=["exactly at min", "above min"])
def test_accept_early_at_or_above_min_funding_books_what_is_covered(covered: int) -> None:
    m = market(listing_terms(amount=100_001, min_funding_bps=7_000))
    seq = m.place(covered, 1_000)
    assert market_events(m.accept(at=T0 + 5)) == [ListingFunded(
        "L1", "loan-of-L1", T0 + 5, "accepted", covered, 1_000, 12,
        (Fill(f"bid-{seq}", f"lender-{seq}", seq, covered, 1_000),), 0, 0,
    )]
    assert m.view(seq).status == "won"


def test_accept_early_with_no_bids_is_rejected() -> None:
    rejected(market(listing_terms(min_funding_bps=1)).accept(), "below_min_funding")


@pytest.mark.parametrize("at", [CLOSES_AT, CLOSES_AT + SECOND], ids=["at", "after"])
def test_accept_at_or_after_closes_at_is_rejected_and_the_deadline_resolves_it(at: int) -> None:
    m = market()
    m.place(100_000, 1_000)
    rejected(m.accept(at=at), "listing_not_open")
    assert only(m.advance(at), ListingFunded).reason == "deadline"


def test_accept_one_microsecond_before_closes_at_is_allowed() -> None:
    m = market()
    m.place(100_000, 1_000)
    assert only(m.accept(at=CLOSES_AT - 1), ListingFunded).at == CLOSES_AT - 1


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_loses_every_bid_except_the_outbid_which_stay_outbid() -> None:
    m = market()
    cheap = m.place(50_000, 1_000)
    outbid = m.place(50_000, 1_800)
    middle = m.place(50_000, 1_500)
    assert market_events(m.cancel(at=T0 + 100)) == [ListingCancelled("L1", T0 + 100, 100_000)]
    assert {seq: status for seq, (status, _) in m.statuses().items()} == {
        cheap: "lost", middle: "lost", outbid: "outbid"}
    summary = m.summary()
    assert (summary.status, summary.closed_at, summary.close_reason) == (
        "cancelled", T0 + 100, "cancelled")
    assert m.engine.next_deadline() is None


def test_cancel_of_a_listing_without_bids_cancels_it() -> None:
    assert events(market().cancel(at=T0 + 1)) == [ListingCancelled("L1", T0 + 1, 0)]


def test_cancel_at_closes_at_is_rejected_because_the_deadline_came_first() -> None:
    m = market()
    rejected(m.cancel(at=CLOSES_AT), "listing_not_open")
    assert only(m.advance(CLOSES_AT), ListingFailed).reason == "deadline"


@pytest.mark.parametrize("command", ["accept", "cancel"])
def test_accept_or_cancel_of_an_unknown_listing_is_not_found(command: str) -> None:
    m = market()
    outcome = m.accept("nope") if command == "accept" else m.cancel("nope")
    rejected(outcome, "listing_not_found")


# --- resolution at the deadline -----------------------------------------------------------------


def test_deadline_funds_a_covered_listing_at_closes_at() -> None:
    m = market()
    cheap = m.place(60_000, 1_000)
    marginal = m.place(60_000, 1_200)
    assert events(m.advance(CLOSES_AT - 1)) == []
    assert market_events(m.advance(CLOSES_AT)) == [ListingFunded(
        "L1", "loan-of-L1", CLOSES_AT, "deadline", 100_000, 1_080, 12, (
            Fill(f"bid-{cheap}", f"lender-{cheap}", cheap, 60_000, 1_000),
            Fill(f"bid-{marginal}", f"lender-{marginal}", marginal, 40_000, 1_200),
        ), 0, 0)]


def test_late_clock_still_resolves_at_closes_at() -> None:
    m = market()
    m.place(100_000, 1_000)
    assert only(m.advance(CLOSES_AT + HOUR), ListingFunded).at == CLOSES_AT


def test_deadline_fails_a_listing_under_min_funding_and_books_nothing() -> None:
    m = market()
    a, b = m.place(60_000, 1_000), m.place(39_999, 1_200)
    assert market_events(m.advance(CLOSES_AT)) == [
        ListingFailed("L1", CLOSES_AT, "deadline", covered=99_999, required=100_000)]
    assert m.statuses() == {a: ("lost", 0), b: ("lost", 0)}, "a lost bid has nothing allocated"
    assert m.summary().status == "failed"


def test_deadline_fails_a_listing_without_bids() -> None:
    assert events(market().advance(CLOSES_AT)) == [
        ListingFailed("L1", CLOSES_AT, "deadline", covered=0, required=100_000)]


def test_deadline_funds_a_partly_covered_listing_above_min_funding() -> None:
    m = market(listing_terms(min_funding_bps=7_000))
    m.place(50_000, 1_000)
    m.place(25_000, 1_200)
    funded = only(m.advance(CLOSES_AT), ListingFunded)
    assert (funded.principal, funded.rate_bps) == (75_000, 1_067)  # 1,066.67 rounded


def test_deadline_fails_a_partly_covered_listing_one_unit_under_min_funding() -> None:
    m = market(listing_terms(min_funding_bps=7_000))
    m.place(69_999, 1_000)
    assert only(m.advance(CLOSES_AT), ListingFailed).required == 70_000


def test_funded_listing_marks_the_set_won_and_keeps_the_outbid_outbid() -> None:
    m = market()
    cheap, outbid = m.place(50_000, 1_000), m.place(50_000, 1_800)
    marginal = m.place(60_000, 1_500)
    only(m.advance(CLOSES_AT), ListingFunded)
    assert m.statuses() == {
        cheap: ("won", 50_000), marginal: ("won", 50_000), outbid: ("outbid", 0)}


def test_deadlines_resolve_in_closes_at_order_across_listings() -> None:
    m = market(
        listing_terms("late", closes_at=T0 + 3 * HOUR),
        listing_terms("early", closes_at=T0 + 1 * HOUR),
        listing_terms("middle", closes_at=T0 + 2 * HOUR),
        listing_terms("tied", closes_at=T0 + 2 * HOUR),  # equal deadlines: opening order
    )
    first = events(m.advance(T0 + 2 * HOUR))
    assert [(e.listing_id, e.at) for e in first if isinstance(e, ListingFailed)] == [
        ("early", T0 + HOUR), ("middle", T0 + 2 * HOUR), ("tied", T0 + 2 * HOUR)]
    assert m.engine.open_listing_ids() == ["late"]
    assert only(m.advance(T0 + 5 * HOUR), ListingFailed).listing_id == "late"


CLOSERS = [pytest.param(close, id=name) for name, close in CLOSED_MARKETS]
SECOND_TRIES: list[object] = [
    pytest.param(lambda m: m.advance(CLOSES_AT + 2 * HOUR), None, id="advance clock again"),
    pytest.param(lambda m: m.accept(), "listing_not_open", id="accept"),
    pytest.param(lambda m: m.cancel(), "listing_not_open", id="cancel"),
    pytest.param(lambda m: m.bid(5_000, 500), "listing_not_open", id="bid"),
]


@pytest.mark.parametrize("close", CLOSERS)
@pytest.mark.parametrize(("second_try", "code"), SECOND_TRIES)
def test_listing_is_resolved_exactly_once(
    close: Callable[[], Market], second_try: Callable[[Market], Outcome], code: str | None
) -> None:
    m = close()
    before = (m.summary(), m.bids())
    outcome = second_try(m)
    if code is None:
        assert events(outcome) == []
    else:
        rejected(outcome, code)
    assert (m.summary(), m.bids()) == before


def test_a_bounded_clock_tick_resolves_the_earliest_due_and_leaves_the_rest_due() -> None:
    ids = [f"L{n}" for n in range(5)]
    m = market(*(listing_terms(i, closes_at=CLOSES_AT + n) for n, i in enumerate(ids)))
    first = market_events(m.execute(AdvanceClock(CLOSES_AT + 10, max_listings=2)))
    assert [e.listing_id for e in first if isinstance(e, ListingFailed)] == ["L0", "L1"]
    rest = market_events(m.execute(AdvanceClock(CLOSES_AT + 10, max_listings=10)))
    assert [e.listing_id for e in rest if isinstance(e, ListingFailed)] == ["L2", "L3", "L4"]
    assert len(first) + len(rest) == 5
    assert m.engine.next_deadline() is None
