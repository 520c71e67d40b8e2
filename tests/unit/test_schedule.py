"""Equal-instalment repayment schedules (docs/rules.md, "Loan and repayment schedule")."""

from __future__ import annotations

import datetime
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matching.schedule import (
    Instalment,
    borrower_schedule,
    due_date,
    fill_schedule,
    monthly_payment,
)

FUNDED_ON = datetime.date(2024, 1, 31)

principals = st.integers(min_value=5_000, max_value=1_000_000_000)
rates = st.integers(min_value=1, max_value=3_600)
terms = st.integers(min_value=1, max_value=60)
fills = st.lists(st.tuples(principals, rates), min_size=1, max_size=20)


def textbook_payment(principal: int, rate_bps: int, term_months: int) -> int:
    """P·r·(1+r)^n / ((1+r)^n − 1) with Fractions, rounded half up: an independent oracle."""
    r = Fraction(rate_bps, 10_000) / 12
    exact = principal * r * (1 + r) ** term_months / ((1 + r) ** term_months - 1)
    return int(exact + Fraction(1, 2))  # floor(x + 1/2), x >= 0


def drift_bound(rate_bps: int, term_months: int) -> Fraction:
    """How far rounding can move the last instalment from the level payment.

    Each month the balance drifts from the exact one by at most 1/2 (payment rounding) plus 1/2
    (interest rounding), and earlier drift compounds at 1 + r: sum of (1 + r)^k for k < n - 1,
    times 1 + r for the last month, plus 1/2 + 1/2 for rounding the last and the level payment.
    """
    growth = 1 + Fraction(rate_bps, 120_000)
    return growth * sum((growth**k for k in range(term_months - 1)), Fraction(0)) + 1


def assert_well_formed(rows: list[Instalment], principal: int) -> None:
    assert sum(row.principal for row in rows) == principal
    assert rows[-1].balance == 0
    balances = [principal] + [row.balance for row in rows]
    assert all(later <= earlier for earlier, later in pairwise(balances))
    assert all(row.payment == row.principal + row.interest for row in rows)
    assert all(row.interest >= 0 and row.principal >= 0 for row in rows)


def test_ppdai_loan_pays_28654_a_month_and_the_last_absorbs_the_rounding() -> None:
    rows = fill_schedule(322_500, 1_200, 12, FUNDED_ON)

    assert monthly_payment(322_500, 1_200, 12) == 28_654  # exactly 28,653.734...
    assert [row.payment for row in rows[:-1]] == [28_654] * 11
    # The 0.27 overpaid each month compounds to ~3.4 of principal repaid early by month 12,
    # per-month interest rounding gives ~1.4 of it back: the last instalment is 2 below.
    assert rows[-1] == Instalment(12, datetime.date(2025, 1, 31), 28_652, 28_368, 284, 0)


def test_payment_matches_the_textbook_formula() -> None:
    assert textbook_payment(100_000, 1_200, 12) == 8_885
    assert monthly_payment(100_000, 1_200, 12) == 8_885


@given(principals, rates, terms)
def test_payment_matches_the_textbook_formula_everywhere(
    principal: int, rate_bps: int, term: int
) -> None:
    assert monthly_payment(principal, rate_bps, term) == textbook_payment(principal, rate_bps, term)


@given(principals, rates, terms)
def test_principal_parts_add_up_to_the_fill(principal: int, rate_bps: int, term: int) -> None:
    assert_well_formed(fill_schedule(principal, rate_bps, term, FUNDED_ON), principal)


@given(principals, rates, terms)
def test_every_instalment_but_the_last_is_the_level_payment(
    principal: int, rate_bps: int, term: int
) -> None:
    payment = monthly_payment(principal, rate_bps, term)
    rows = fill_schedule(principal, rate_bps, term, FUNDED_ON)

    assert [row.payment for row in rows[:-1]] == [payment] * (term - 1)
    assert abs(rows[-1].payment - payment) <= drift_bound(rate_bps, term)


@given(principals, rates, terms)
def test_instalments_are_numbered_and_dated_month_by_month(
    principal: int, rate_bps: int, term: int
) -> None:
    rows = fill_schedule(principal, rate_bps, term, FUNDED_ON)

    assert [row.n for row in rows] == list(range(1, term + 1))
    assert [row.due_date for row in rows] == [due_date(FUNDED_ON, n) for n in range(1, term + 1)]


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=3_600), terms)
def test_tiny_loans_still_repay_exactly_with_no_negative_parts(
    principal: int, rate_bps: int, term: int
) -> None:
    assert_well_formed(fill_schedule(principal, rate_bps, term, FUNDED_ON), principal)


def test_interest_free_loan_splits_principal_rounded_half_up() -> None:
    rows = fill_schedule(100_000, 0, 12, FUNDED_ON)

    assert monthly_payment(100_000, 0, 12) == 8_333  # 8,333.33 rounds down
    assert monthly_payment(100_002, 0, 12) == 8_334  # 8,333.5 rounds up
    assert [row.payment for row in rows[:-1]] == [8_333] * 11
    assert rows[-1].payment == 100_000 - 11 * 8_333
    assert all(row.interest == 0 for row in rows)


def test_bad_loan_terms_are_a_bug() -> None:
    with pytest.raises(ValueError):
        monthly_payment(100_000, 1_200, 0)
    with pytest.raises(ValueError):
        monthly_payment(-1, 1_200, 12)


@given(fills, terms)
def test_borrower_rows_are_the_column_sums_of_the_fills(
    loan_fills: list[tuple[int, int]], term: int
) -> None:
    per_fill = [fill_schedule(amount, rate, term, FUNDED_ON) for amount, rate in loan_fills]
    rows = borrower_schedule(loan_fills, term, FUNDED_ON)

    assert len(rows) == term
    for n, row in enumerate(rows):
        column = [schedule[n] for schedule in per_fill]
        assert row.n == n + 1
        assert row.due_date == due_date(FUNDED_ON, n + 1)
        assert row.payment == sum(r.payment for r in column)
        assert row.principal == sum(r.principal for r in column)
        assert row.interest == sum(r.interest for r in column)
        assert row.balance == sum(r.balance for r in column)
    assert_well_formed(rows, sum(amount for amount, _ in loan_fills))


def test_borrower_schedule_accepts_a_one_shot_iterator() -> None:
    rows = borrower_schedule(iter([(100_000, 1_200), (222_500, 1_200)]), 12, FUNDED_ON)

    assert sum(row.principal for row in rows) == 322_500


@pytest.mark.parametrize(
    ("funded_on", "n", "expected"),
    [
        (datetime.date(2023, 1, 31), 1, datetime.date(2023, 2, 28)),
        (datetime.date(2024, 1, 31), 1, datetime.date(2024, 2, 29)),
        (datetime.date(2023, 1, 31), 2, datetime.date(2023, 3, 31)),
        (datetime.date(2023, 8, 31), 1, datetime.date(2023, 9, 30)),
        (datetime.date(2023, 12, 15), 1, datetime.date(2024, 1, 15)),
        (datetime.date(2023, 1, 31), 12, datetime.date(2024, 1, 31)),
        (datetime.date(2023, 11, 30), 60, datetime.date(2028, 11, 30)),
    ],
)
def test_due_date_keeps_the_day_clamped_to_month_end(
    funded_on: datetime.date, n: int, expected: datetime.date
) -> None:
    assert due_date(funded_on, n) == expected
