"""Recovery replays a listing's stored bids into its book column by column (`restore_bids`):
the book must come out exactly as the one that took the bids live, whether they fit in one go
(the fast path) or fill the listing and push each other out, whatever the slices they come in."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app import recovery
from matching import Deposit, Engine, ListingPolicy, OpenListing, PlaceBid
from tests.unit.books import book_state, stored
from tests.unit.builders import T0, Market, listing_terms

LENDERS = [f"lender-{i}" for i in range(5)]


def rebuilt_from(live: Engine, opened: OpenListing, cuts: list[int]) -> Engine:
    """A fresh engine with the live one's balances and orders, and the listing's bids restored
    in slices ending at `cuts`."""
    engine = Engine(live.rules)
    for account, balance in live.ledger.accounts.items():
        engine.restore_account(account, balance.available, balance.reserved)
    for view in live.orders.all_views():
        engine.restore_standing_order(view)
    engine.restore_ticket_numbering(live.orders.last_ticket)
    engine.restore_entry_numbering(live.ledger.last_entry_id)
    engine.restore_listing(opened)
    book = live._books[opened.terms.listing_id]
    start = 0
    for stop in [*sorted({c for c in cuts if c < book.bid_count}), book.bid_count]:
        if start < stop:
            engine.restore_bids(stored(book, start, stop))
            start = stop
    return engine


bids = st.lists(
    st.tuples(
        st.integers(5_000, 60_000),
        # Often a few rates: bids stack on a level, across the slices too.
        st.sampled_from([800, 900, 1_000]) | st.integers(1, 2_000),
        st.sampled_from(LENDERS),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@example(  # bids that cover the listing exactly, then one that is no longer competitive
    amount=100_000, share_cap_bps=10_000, orders=0, cuts=[],
    placed=[(50_000, 900, "lender-0"), (50_000, 800, "lender-1")],
    later=[(10_000, 950, "lender-2")],
)
@given(
    amount=st.sampled_from([100_000, 300_000, 1_000_000_000]),
    share_cap_bps=st.sampled_from([10_000, 4_000]),
    orders=st.integers(0, 3),
    placed=bids,
    cuts=st.lists(st.integers(0, 70), max_size=4),
    later=bids,
)
def test_a_book_restored_from_its_stored_bids_is_the_book_that_took_them_live(
    amount: int, share_cap_bps: int, orders: int, placed: list[tuple[int, int, str]],
    cuts: list[int], later: list[tuple[int, int, str]],
) -> None:
    market = Market()
    for n in range(orders):
        market.deposit(f"auto-{n}", 10**9)
        market.order(f"auto-{n}", min_rate_bps=500 + n, amount_per_listing=10_000 + n)
    terms = listing_terms(
        amount=amount, policy=ListingPolicy(max_lender_share_bps=share_cap_bps)
    )
    opened = OpenListing(terms, market.next_seq(), T0)
    assert isinstance(market.execute(opened), list)
    for bid_amount, rate, lender in placed:
        market.bid(bid_amount, rate, lender=lender)  # refused ones are simply not stored
    live = market.engine

    rebuilt = rebuilt_from(live, opened, cuts)

    rebuilt.check_invariants()
    listing_id = terms.listing_id
    assert book_state(rebuilt._books[listing_id]) == book_state(live._books[listing_id])
    assert rebuilt.bids(listing_id) == live.bids(listing_id)
    assert rebuilt.summary(listing_id) == live.summary(listing_id)
    for lender in LENDERS:  # then both take the same later bids alike
        deposit = Deposit(lender, f"later-{lender}", 10**6, market.now)
        assert rebuilt.execute(deposit) == live.execute(deposit)
    for n, (bid_amount, rate, lender) in enumerate(later, start=market.seq + 1):
        bid = PlaceBid(listing_id, f"later-{n}", lender, bid_amount, rate, n, market.now)
        assert rebuilt.execute(bid) == live.execute(bid)
    rebuilt.check_invariants()


def market_with_listing() -> tuple[Market, OpenListing]:
    """A market with one open listing of 100,000, and the command that opened it (to replay)."""
    market = Market()
    opened = OpenListing(listing_terms(amount=100_000), market.next_seq(), T0)
    assert isinstance(market.execute(opened), list)
    return market, opened


def test_bids_that_never_cover_the_listing_take_the_fast_path_and_those_that_do_do_not() -> None:
    """The two paths are both exercised above; this pins which is which, as recovery calls
    them."""
    market, opened = market_with_listing()
    terms = opened.terms
    for n in range(3):
        market.bid(30_000, 900 - n)
    market.bid(40_000, 800)  # covers the listing with the first bid to spare: pushes it out
    live = market.engine
    book = live._books[terms.listing_id]
    assert book.outbid, "the live book pushed a bid out"

    recovered = Engine(live.rules)  # as recovery replays them: through the engine's call
    recovered.restore_listing(opened)  # of the book's `restore`, which says the path it took
    assert recovered.restore_bids(stored(book, 0, 3)), (
        "three bids short of the amount go in as columns"
    )
    assert not recovered.restore_bids(stored(book, 3, 4)), (
        "the bid that covers the listing is added by the rules"
    )
    assert book_state(recovered._books[terms.listing_id]) == book_state(book)


def test_restored_bids_keep_one_copy_of_a_lenders_id_the_accounts() -> None:
    """Storage gives each bid its own copy of its lender's id; the book keeps the account's."""
    market, opened = market_with_listing()
    terms = opened.terms
    for _ in range(3):
        market.bid(10_000, 900, lender="lender-0")
    live = market.engine
    held = live.ledger.accounts["lender-0"]
    recovered = Engine(live.rules)
    recovered.restore_account("".join("lender-0"), held.available, held.reserved)
    recovered.restore_listing(opened)
    recovered.restore_bids(stored(live._books[terms.listing_id], 0, 3))
    copy = recovered.ledger.accounts["lender-0"].account_id
    assert all(lender is copy for lender in recovered._books[terms.listing_id].lenders)


def test_live_bids_of_a_lender_without_an_account_fail_recovery_naming_the_lender() -> None:
    """Storage lost a lender's account: its bids still replay (their stored copy of the id
    stands in for the account's), and recovery's check names the lender, not a KeyError."""
    market, opened = market_with_listing()
    terms = opened.terms
    for n in range(3):
        market.bid(30_000, 900 - n, lender="lena")
    market.bid(40_000, 800, lender="leo")  # covers the listing: the replay adds bid by bid
    live = market.engine
    recovered = Engine(live.rules)
    for account, balance in live.ledger.accounts.items():
        if account != "lena":
            recovered.restore_account(account, balance.available, balance.reserved)
    recovered.restore_listing(opened)
    assert not recovered.restore_bids(stored(live._books[terms.listing_id], 0, 4))
    with pytest.raises(
        recovery.RecoveryError, match=r"live bids of lenders without an account: \['lena'\]"
    ):
        recovery._check_reservations(recovered)
