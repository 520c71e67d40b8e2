"""Pricing of fills (docs/rules.md, "Pricing"): pay-as-bid with its headline rate, and uniform.

Unless a test says otherwise the listing is "L1": amount 100,000, max rate 2,000 bps, all or
nothing, closing at CLOSES_AT (an hour after T0). Listings here are resolved at the deadline.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from matching import Fill, ListingFunded, Rejection
from matching.rules import Pricing
from tests.unit.builders import (
    CLOSES_AT,
    Market,
    listing_terms,
    market,
    market_events,
    only,
    rejected,
)


def fills_at_deadline(m: Market) -> list[tuple[int, int]]:
    """Resolve "L1" at its deadline; its fills as (amount, rate_bps) in priority order."""
    return [(f.amount, f.rate_bps) for f in only(m.advance(CLOSES_AT), ListingFunded).fills]


# --- pay as bid ---------------------------------------------------------------------------------


def test_pay_as_bid_fills_each_bid_at_its_own_rate() -> None:
    m = market()
    m.place(40_000, 1_500)
    m.place(50_000, 1_000)
    m.place(30_000, 1_200)
    funded = only(m.advance(CLOSES_AT), ListingFunded)
    assert [(f.amount, f.rate_bps) for f in funded.fills] == [
        (50_000, 1_000), (30_000, 1_200), (20_000, 1_500)]
    assert (funded.principal, funded.rate_bps) == (100_000, 1_160)  # (50·10 + 30·12 + 20·15) / 100


def test_fills_carry_the_bid_and_the_lender() -> None:
    m = market()
    seq = m.place(100_000, 1_000)
    assert only(m.advance(CLOSES_AT), ListingFunded).fills == (
        Fill(f"bid-{seq}", f"lender-{seq}", seq, 100_000, 1_000),)


def test_headline_rate_rounds_an_exact_half_up() -> None:
    # 50,000 @ 1,201 and 50,000 @ 1,204 weigh in at exactly 1,202.5 bps. Half up gives 1,203;
    # Python's round() (half to even) would give 1,202 and truncation 1,202.
    m = market()
    m.place(50_000, 1_201)
    m.place(50_000, 1_204)
    assert only(m.advance(CLOSES_AT), ListingFunded).rate_bps == 1_203


def test_headline_rate_rounds_below_half_down_and_above_half_up() -> None:
    below, above = market(listing_terms("below")), market(listing_terms("above"))
    below.place(60_000, 1_000, listing_id="below")  # 1,000.4
    below.place(40_000, 1_001, listing_id="below")
    above.place(40_000, 1_000, listing_id="above")  # 1,000.6
    above.place(60_000, 1_001, listing_id="above")
    assert only(below.advance(CLOSES_AT), ListingFunded).rate_bps == 1_000
    assert only(above.advance(CLOSES_AT), ListingFunded).rate_bps == 1_001


# --- uniform ------------------------------------------------------------------------------------


def test_uniform_spec_example_clears_at_the_half_allocated_marginal_rate() -> None:
    m = market(listing_terms(amount=300_000, pricing="uniform"))
    m.place(150_000, 1_200)
    m.place(100_000, 1_500)
    m.place(100_000, 1_800)  # half of it is left out
    assert fills_at_deadline(m) == [(150_000, 1_800), (100_000, 1_800), (50_000, 1_800)]


def test_uniform_spec_example_clears_at_the_next_bid_when_the_set_covers_exactly() -> None:
    # docs/rules.md's second example: 150,000 @ 12 %, 100,000 @ 15 %, 50,000 @ 18 % cover 300,000
    # exactly and 10,000 @ 19 % is the first money left out. Placed last, the 19 % bid would be
    # refused as not competitive (the listing is already covered at a marginal 18 %), so it is
    # placed while the book is still short; the 18 % bid then covers the amount and pushes it out.
    m = market(listing_terms(amount=300_000, pricing="uniform"))
    m.place(150_000, 1_200)
    m.place(100_000, 1_500)
    left_out = m.place(10_000, 1_900)
    m.place(50_000, 1_800)
    assert m.view(left_out).status == "outbid"
    funded = only(m.advance(CLOSES_AT), ListingFunded)
    assert [(f.amount, f.rate_bps) for f in funded.fills] == [
        (150_000, 1_900), (100_000, 1_900), (50_000, 1_900)]
    assert (funded.principal, funded.rate_bps) == (300_000, 1_900)


def test_uniform_bid_arriving_after_an_exact_cover_is_refused_and_nothing_is_left_out() -> None:
    m = market(listing_terms(amount=300_000, pricing="uniform"))
    m.place(150_000, 1_200)
    m.place(100_000, 1_500)
    m.place(50_000, 1_800)
    assert rejected(m.bid(10_000, 1_900), "bid_not_competitive").marginal_rate_bps == 1_800
    assert fills_at_deadline(m) == [(150_000, 2_000), (100_000, 2_000), (50_000, 2_000)]


def test_uniform_clears_at_the_marginal_rate_when_part_of_it_is_left_out() -> None:
    m = market(listing_terms(pricing="uniform"))
    m.place(50_000, 1_500)  # outbid below, but a dearer rate than the money left out
    m.place(60_000, 1_000)
    m.place(60_000, 1_200)  # 20,000 of it is left out
    assert fills_at_deadline(m) == [(60_000, 1_200), (40_000, 1_200)]


def test_uniform_with_nothing_left_out_clears_at_the_max_rate_when_partly_funded() -> None:
    m = market(listing_terms(pricing="uniform", min_funding_bps=7_000))
    m.place(50_000, 1_000)
    m.place(30_000, 1_200)
    funded = only(m.advance(CLOSES_AT), ListingFunded)
    assert [(f.amount, f.rate_bps) for f in funded.fills] == [(50_000, 2_000), (30_000, 2_000)]
    assert (funded.principal, funded.rate_bps) == (80_000, 2_000)


def test_uniform_with_nothing_left_out_clears_at_the_max_rate_when_exactly_covered() -> None:
    m = market(listing_terms(pricing="uniform"))
    m.place(60_000, 1_000)
    m.place(40_000, 1_200)
    assert fills_at_deadline(m) == [(60_000, 2_000), (40_000, 2_000)]


def test_uniform_pricing_applies_to_an_early_acceptance() -> None:
    m = market(listing_terms(pricing="uniform", min_funding_bps=5_000))
    m.place(60_000, 1_000)
    assert only(m.accept(), ListingFunded).fills[0].rate_bps == 2_000


# --- both rules on the same bids ----------------------------------------------------------------

bids = st.lists(
    st.tuples(st.integers(5_000, 100_000), st.integers(1, 2_000)), min_size=1, max_size=12
)


def resolve_with(pricing: Pricing, book: list[tuple[int, int]]) -> ListingFunded | None:
    """Place `book` on a listing needing half of 100,000; its loan at the deadline, if any."""
    m = market(listing_terms(pricing=pricing, min_funding_bps=5_000))
    for amount, rate in book:
        outcome = m.bid(amount, rate)
        assert not isinstance(outcome, Rejection) or outcome.code == "bid_not_competitive"
    resolution = market_events(m.advance(CLOSES_AT))[0]
    return resolution if isinstance(resolution, ListingFunded) else None


@given(bids)
def test_uniform_and_pay_as_bid_book_the_same_money_and_no_winner_earns_less(
    book: list[tuple[int, int]],
) -> None:
    paid, cleared = resolve_with("pay_as_bid", book), resolve_with("uniform", book)
    if paid is None or cleared is None:
        assert paid is None and cleared is None
        return
    assert [(f.seq, f.amount) for f in paid.fills] == [(f.seq, f.amount) for f in cleared.fills]
    assert paid.principal == cleared.principal == sum(f.amount for f in paid.fills) <= 100_000
    assert len({f.rate_bps for f in cleared.fills}) == 1
    assert all(c.rate_bps >= p.rate_bps for p, c in zip(paid.fills, cleared.fills, strict=True))
    assert min(f.rate_bps for f in paid.fills) <= paid.rate_bps <= max(
        f.rate_bps for f in paid.fills)
    assert cleared.rate_bps <= 2_000
