"""Grade policy in the core: the band floor, a lender's share cap, the borrower limit, and the
policy a listing was opened under staying with it."""

from __future__ import annotations

from matching import ListingFunded, ListingPolicy, MarketRules
from matching.policy import default_grade_policies, share_of
from tests.unit.builders import CLOSES_AT, Market, events, listing_terms, market, only, rejected


def test_a_bid_below_the_grade_floor_is_refused_and_one_at_the_floor_accepted() -> None:
    m = market(listing_terms(policy=ListingPolicy(min_rate_bps=800)))
    assert rejected(m.bid(10_000, 799), "rate_below_grade_floor").field == "min_rate_bps"
    m.place(10_000, 800)


def test_a_listing_whose_cap_is_below_its_grade_floor_does_not_open() -> None:
    terms = listing_terms(max_rate_bps=799, policy=ListingPolicy(min_rate_bps=800))
    assert rejected(Market().open(terms), "rate_below_grade_floor").field == "max_rate_bps"
    events(Market().open(listing_terms(max_rate_bps=800, policy=ListingPolicy(min_rate_bps=800))))


def test_a_lender_may_hold_up_to_its_share_cap_and_not_one_unit_more() -> None:
    m = market(listing_terms(amount=100_000, policy=ListingPolicy(max_lender_share_bps=3_000)))
    events(m.bid(20_000, 1_000, lender="lena"))
    rejected(m.bid(10_001, 1_000, lender="lena"), "lender_share_exceeded")
    events(m.bid(10_000, 1_000, lender="lena"))  # exactly 30 % of 100,000
    events(m.bid(30_000, 1_000, lender="leo"))  # another lender has a share of its own


def test_an_outbid_bid_no_longer_counts_against_the_share_cap() -> None:
    m = market(listing_terms(amount=100_000, policy=ListingPolicy(max_lender_share_bps=5_000)))
    events(m.bid(50_000, 1_800, lender="lena"))
    events(m.bid(50_000, 1_000, lender="leo"))
    events(m.bid(50_000, 1_000, lender="lars"))  # pushes lena's 1,800 bid out
    events(m.bid(50_000, 900, lender="lena"))


def test_the_borrower_limit_counts_open_listings_and_funded_principal() -> None:
    m = Market(MarketRules(borrower_limit=250_000))
    events(m.open(listing_terms("L1", amount=100_000, borrower_id="bob")))
    events(m.open(listing_terms("L2", amount=150_000, borrower_id="bob")))
    over = listing_terms("L3", amount=100_000, borrower_id="bob")
    rejected(m.open(over), "borrower_limit_exceeded")
    events(m.open(listing_terms("L4", amount=250_000, borrower_id="bea")))
    m.place(100_000, 1_000, listing_id="L1")
    m.place(60_000, 1_000, listing_id="L2")
    only(m.advance(CLOSES_AT), ListingFunded)  # L1 funded 100,000; L2 failed and frees 150,000
    rejected(m.open(listing_terms("L5", amount=150_001, borrower_id="bob",
                                  closes_at=CLOSES_AT + 3_600_000_000)), "borrower_limit_exceeded")
    events(m.open(listing_terms("L6", amount=150_000, borrower_id="bob",
                                closes_at=CLOSES_AT + 3_600_000_000)))


def test_each_listing_pays_the_fee_and_reserve_it_was_opened_under() -> None:
    cheap = ListingPolicy(reserve_bps=100)
    dear = ListingPolicy(service_fee_bps=200, reserve_bps=500)
    m = market(listing_terms("L1", policy=cheap), listing_terms("L2", policy=dear))
    m.place(100_000, 1_000, listing_id="L1")
    m.place(100_000, 1_000, listing_id="L2")
    funded = [e for e in events(m.advance(CLOSES_AT)) if isinstance(e, ListingFunded)]
    assert [(f.service_fee, f.reserve_contribution) for f in funded] == [(0, 1_000), (2_000, 5_000)]


def test_the_default_table_is_the_reserve_table_with_no_floor_and_no_fee() -> None:
    table = default_grade_policies()
    assert {g: p.reserve_bps for g, p in table.items()} == {
        "AA": 0, "A": 100, "B": 150, "C": 200, "D": 250, "E": 300, "HR": 500,
    }
    assert {(p.min_rate_bps, p.service_fee_bps) for p in table.values()} == {(0, 0)}


def test_shares_round_half_up_to_a_minor_unit() -> None:
    assert [share_of(100_100, 50), share_of(100_099, 50), share_of(1, 5_000), share_of(0, 500)] == [
        501, 500, 1, 0,
    ]
