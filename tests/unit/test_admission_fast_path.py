"""`admission.admit_bid` (the engine's admission) passes the common bid after a few comparisons
and sends every other one to `admission.check_bid`: whatever the bid, its answer and the
engine's are the one `check_bid` gives (the same rejection, or an admitted bid), at the edges
of every check."""

from hypothesis import given, settings
from hypothesis import strategies as st

from matching import ListingPolicy, OpenListing, PlaceBid, Rejection, admission
from matching.rules import Pricing
from tests.unit.builders import CLOSES_AT, T0, Market, listing_terms

AMOUNT, MAX_RATE = 100_000, 2_000

bids = st.lists(
    st.tuples(
        st.sampled_from([4_999, 5_000, 10_000, 30_000, 33_333, 50_000, AMOUNT, AMOUNT + 1]),
        st.sampled_from([-1, 0, 1, 2, 899, 900, 901, 1_500, 1_999, MAX_RATE, MAX_RATE + 1]),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([0, 0, 0, CLOSES_AT - T0 - 1, CLOSES_AT - T0]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    floor=st.sampled_from([0, 1, 900, MAX_RATE]),
    share_cap_bps=st.sampled_from([10_000, 5_000]),
    close_when_funded=st.booleans(),
    pricing=st.sampled_from(["pay_as_bid", "uniform"]),
    placed=bids,
)
def test_the_engine_answers_every_bid_as_check_bid_does(
    floor: int, share_cap_bps: int, close_when_funded: bool, pricing: Pricing,
    placed: list[tuple[int, int, str, int]],
) -> None:
    market = Market()
    terms = listing_terms(
        amount=AMOUNT, max_rate_bps=MAX_RATE, close_when_funded=close_when_funded,
        pricing=pricing,
        policy=ListingPolicy(min_rate_bps=floor, max_lender_share_bps=share_cap_bps),
    )
    assert isinstance(market.execute(OpenListing(terms, market.next_seq(), T0)), list)
    for amount, rate, lender, after in placed:
        book = market.engine._books.get(terms.listing_id)
        if book is None:  # closed when funded: the engine no longer holds it
            break
        at = max(market.now, T0 + after)
        probe = PlaceBid(terms.listing_id, "probe", lender, amount, rate, market.seq + 1, at)
        expected = admission.check_bid(book, probe, market.engine.rules)
        assert admission.admit_bid(book, probe, market.engine.rules) == expected
        outcome = market.bid(amount, rate, lender=lender, at=at)
        if expected is None:
            assert isinstance(outcome, list), outcome
        else:
            assert isinstance(outcome, Rejection) and outcome == expected
