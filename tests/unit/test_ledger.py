"""The custody ledger: bids freeze money, outbids and failures free it, a funded loan pays the
borrower, the fee and the reserve. Invariants (conservation, reserved = live bids, nothing
negative) are checked after every command by the builders' `Market`."""

from __future__ import annotations

import pytest

from matching import FEES, RESERVE_POOL, LedgerEntry, ListingFunded, ListingPolicy
from tests.unit.builders import (
    CLOSES_AT,
    NO_POLICY,
    Market,
    entries,
    events,
    listing_terms,
    market_events,
    rejected,
)

LENA, LEO = "lena", "leo"


def new_market(*, policy: ListingPolicy = NO_POLICY, amount: int = 100_000) -> Market:
    m = Market(auto_fund=False)
    events(m.open(listing_terms(amount=amount, policy=policy)))
    return m


def kinds(outcome: object) -> list[tuple[str, str, str, int]]:
    assert isinstance(outcome, list)
    return [(e.kind, e.debit, e.credit, e.amount) for e in outcome if isinstance(e, LedgerEntry)]


def test_a_bid_of_exactly_the_available_money_reserves_all_of_it() -> None:
    m = new_market()
    events(m.deposit(LENA, 60_000))
    outcome = m.bid(60_000, 1_000, lender=LENA)
    assert kinds(outcome) == [("reserve", LENA, LENA, 60_000)]
    assert (m.available(LENA), m.reserved(LENA)) == (0, 60_000)


def test_a_bid_one_unit_beyond_the_available_money_is_refused_and_changes_nothing() -> None:
    m = new_market()
    events(m.deposit(LENA, 60_000))
    before = m.engine.bids("L1")
    refused = rejected(m.bid(60_001, 1_000, lender=LENA), "insufficient_funds")
    assert refused.available == 60_000
    assert (m.available(LENA), m.reserved(LENA), m.engine.bids("L1")) == (60_000, 0, before)


def test_a_lender_without_an_account_has_nothing_available() -> None:
    refused = rejected(new_market().bid(5_000, 1_000, lender=LENA), "insufficient_funds")
    assert refused.available == 0


def test_a_book_keeps_one_copy_of_a_lenders_id_whatever_copy_each_bid_brings() -> None:
    """Each request parses its own copy of the id; a book of many bids keeps the account's."""
    m = new_market()
    events(m.deposit(LENA, 100_000))
    copies = ["".join(LENA) for _ in range(2)]
    assert copies[0] is not LENA and copies[1] is not copies[0]
    for copy in copies:
        events(m.bid(5_000, 1_000, lender=copy))
    held = m.engine.ledger.accounts[LENA].account_id
    assert all(lender is held for lender in m.engine._books["L1"].lenders)


def test_a_broken_balance_is_reported_with_its_account_and_both_columns() -> None:
    """The invariant check after every command names what it found, not an object address."""
    m = new_market()
    events(m.deposit(LENA, 10_000))
    events(m.bid(5_000, 1_000, lender=LENA))
    m.engine.ledger.accounts[LENA].reserved += 1
    with pytest.raises(AssertionError, match=r"'lena'.*available=5000, reserved=5001"):
        m.engine.check_invariants()


def test_an_outbid_bid_gets_its_whole_amount_back() -> None:
    m = new_market()
    events(m.deposit(LENA, 100_000))
    events(m.deposit(LEO, 100_000))
    m.bid(100_000, 1_800, lender=LENA)
    outcome = m.bid(100_000, 1_500, lender=LEO)
    assert kinds(outcome) == [("reserve", LEO, LEO, 100_000), ("release", LENA, LENA, 100_000)]
    assert (m.available(LENA), m.reserved(LENA)) == (100_000, 0)


def test_funding_settles_each_fill_and_releases_the_marginal_bids_rest() -> None:
    m = new_market()
    events(m.deposit(LENA, 70_000))
    events(m.deposit(LEO, 50_000))
    m.bid(70_000, 1_000, lender=LENA)
    m.bid(50_000, 1_200, lender=LEO)  # marginal: 30,000 of it is in the funding set
    outcome = m.advance(CLOSES_AT)
    borrower = "borrower-of-L1"
    assert kinds(outcome) == [
        ("settle", LENA, borrower, 70_000),
        ("settle", LEO, borrower, 30_000),
        ("release", LEO, LEO, 20_000),
    ]
    assert (m.available(LEO), m.reserved(LEO)) == (20_000, 0)
    assert (m.available(LENA), m.reserved(LENA)) == (0, 0)
    assert m.available(borrower) == 100_000
    assert {e.cause_type for e in entries(outcome)} == {"loan"}
    assert {e.cause_id for e in entries(outcome)} == {"loan-of-L1"}


def test_the_borrower_pays_fee_and_reserve_rounded_half_up_out_of_the_principal() -> None:
    # 100,100 × 50 bps = 500.5 → 501 (half up); × 150 bps = 1,501.5 → 1,502.
    m = new_market(policy=ListingPolicy(service_fee_bps=50, reserve_bps=150), amount=100_100)
    events(m.deposit(LENA, 100_100))
    m.bid(100_100, 1_000, lender=LENA)
    outcome = m.advance(CLOSES_AT)
    funded = market_events(outcome)[0]
    assert isinstance(funded, ListingFunded)
    borrower = "borrower-of-L1"
    assert kinds(outcome)[-2:] == [
        ("fee", borrower, FEES, 501), ("reserve_contribution", borrower, RESERVE_POOL, 1_502),
    ]
    assert (funded.service_fee, funded.reserve_contribution) == (501, 1_502)
    assert m.available(borrower) == 100_100 - 501 - 1_502
    assert (m.available(FEES), m.available(RESERVE_POOL)) == (501, 1_502)


def test_a_zero_fee_moves_nothing_to_the_platform() -> None:
    m = new_market(policy=ListingPolicy(reserve_bps=100))
    events(m.deposit(LENA, 100_000))
    m.bid(100_000, 1_000, lender=LENA)
    outcome = m.advance(CLOSES_AT)
    assert [k for k, *_ in kinds(outcome)] == ["settle", "reserve_contribution"]
    assert m.engine.balance(FEES) is None


def test_a_failed_listing_releases_every_bid() -> None:
    m = new_market()
    events(m.deposit(LENA, 200_000))
    m.bid(60_000, 1_000, lender=LENA)
    m.bid(30_000, 1_200, lender=LENA)
    outcome = m.advance(CLOSES_AT)
    assert kinds(outcome) == [("release", LENA, LENA, 60_000), ("release", LENA, LENA, 30_000)]
    assert {e.cause_type for e in entries(outcome)} == {"listing"}
    assert (m.available(LENA), m.reserved(LENA)) == (200_000, 0)


def test_a_cancelled_listing_releases_its_live_bids_and_not_the_outbid_again() -> None:
    m = new_market()
    events(m.deposit(LENA, 300_000))
    m.bid(60_000, 1_800, lender=LENA)
    m.bid(100_000, 1_000, lender=LENA)  # covers alone: the 1,800 bid is outbid and released
    outcome = m.cancel()
    assert kinds(outcome) == [("release", LENA, LENA, 100_000)]
    assert (m.available(LENA), m.reserved(LENA)) == (300_000, 0)


def test_deposits_and_withdrawals_move_money_in_and_out_of_custody() -> None:
    m = Market(auto_fund=False)
    assert kinds(m.deposit(LENA, 10_000)) == [("deposit", "external", LENA, 10_000)]
    assert kinds(m.withdraw(LENA, 4_000)) == [("withdrawal", LENA, "external", 4_000)]
    assert m.available(LENA) == 6_000
    assert rejected(m.withdraw(LENA, 6_001), "insufficient_funds").available == 6_000
    assert kinds(m.withdraw(LENA, 6_000)) == [("withdrawal", LENA, "external", 6_000)]
    assert m.engine.ledger.net_inflow == 0


def test_reserved_money_cannot_be_withdrawn() -> None:
    m = new_market()
    events(m.deposit(LENA, 50_000))
    m.bid(40_000, 1_000, lender=LENA)
    assert rejected(m.withdraw(LENA, 10_001), "insufficient_funds").available == 10_000


@pytest.mark.parametrize(
    ("account", "amount", "code"),
    [
        ("nobody", 1, "account_not_found"),
        (LENA, 0, "amount_out_of_range"),
        (LENA, -5, "amount_out_of_range"),
    ],
)
def test_bad_withdrawals_are_refused(account: str, amount: int, code: str) -> None:
    m = Market(auto_fund=False)
    events(m.deposit(LENA, 10))
    rejected(m.withdraw(account, amount), code)
    assert m.available(LENA) == 10


@pytest.mark.parametrize(("account", "amount"), [("external", 10), (LENA, 0), (LENA, -1)])
def test_bad_deposits_are_refused(account: str, amount: int) -> None:
    m = Market(auto_fund=False)
    outcome = m.deposit(account, amount)
    assert not isinstance(outcome, list)
    assert m.engine.ledger.accounts == {}


def test_entries_are_numbered_in_order_across_commands() -> None:
    m = new_market()
    events(m.deposit(LENA, 100_000))
    m.bid(70_000, 1_000, lender=LENA)
    m.bid(30_000, 1_000, lender=LENA)
    numbers = [e.entry_id for e in entries(m.advance(CLOSES_AT))]
    assert numbers == [4, 5]
