"""Equal-instalment (annuity, 等额本息) repayment schedules, in integer minor units.

The monthly rate is r = rate_bps / 120000, kept as an exact integer ratio: no floats, no clock.
Every division rounds half up. Each fill's last instalment absorbs the rounding, so its principal
parts add up exactly to the fill; the borrower's schedule is the column sum of the fills'.
"""

import calendar
import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from operator import add

_Q = 120_000  # rate_bps / _Q is the monthly rate: 10,000 bps x 12 months


@dataclass(frozen=True, slots=True)
class Instalment:
    n: int  # 1-based instalment number
    due_date: datetime.date
    payment: int  # minor units
    principal: int
    interest: int
    balance: int  # principal still owed after this instalment


def _round_half_up(num: int, den: int) -> int:
    """num / den rounded half up, for num >= 0 and den > 0."""
    return (2 * num + den) // (2 * den)


@lru_cache(maxsize=4096)
def _annuity_ratio(rate_bps: int, term_months: int) -> tuple[int, int]:
    """(num, den) with payment = principal * num / den, reduced. Big-int powers, cached."""
    if rate_bps == 0:
        return 1, term_months
    grown = (_Q + rate_bps) ** term_months
    num, den = rate_bps * grown, _Q * (grown - _Q**term_months)
    g = math.gcd(num, den)
    return num // g, den // g


def monthly_payment(principal: int, rate_bps: int, term_months: int) -> int:
    """Level payment P·r·(1+r)^n / ((1+r)^n − 1), exact, rounded half up. O(1) once cached.

    At rate 0: P / n rounded half up (the limit as r → 0, same rule); the last takes the rest.
    """
    if principal < 0 or rate_bps < 0 or term_months < 1:
        raise ValueError(f"bad loan: {principal=} {rate_bps=} {term_months=}")
    num, den = _annuity_ratio(rate_bps, term_months)
    return _round_half_up(principal * num, den)


def _parts(principal: int, rate_bps: int, term_months: int) -> tuple[list[int], list[int]]:
    """(principal parts, interest parts), one per month. O(term).

    Interest is balance · r rounded half up; the principal part is payment − interest, clamped
    to the balance (only tiny loans reach the clamp; later rows are then 0). The last month
    repays the whole remaining balance, absorbing all rounding.
    """
    payment = monthly_payment(principal, rate_bps, term_months)
    principals: list[int] = []
    interests: list[int] = []
    balance = principal
    twice_rate, twice_q = 2 * rate_bps, 2 * _Q
    for _ in range(term_months - 1):
        interest = (balance * twice_rate + _Q) // twice_q  # _round_half_up, inlined for speed
        part = min(payment - interest, balance)
        principals.append(part)
        interests.append(interest)
        balance -= part
    principals.append(balance)
    interests.append(_round_half_up(balance * rate_bps, _Q))
    return principals, interests


def _rows(
    principals: list[int], interests: list[int], total: int, funded_on: datetime.date
) -> list[Instalment]:
    """Instalments from the principal and interest columns of a loan of `total`. O(term)."""
    rows: list[Instalment] = []
    balance = total
    for n, (part, interest) in enumerate(zip(principals, interests, strict=True), start=1):
        balance -= part
        rows.append(Instalment(n, due_date(funded_on, n), part + interest, part, interest, balance))
    return rows


def fill_schedule(
    principal: int, rate_bps: int, term_months: int, funded_on: datetime.date
) -> list[Instalment]:
    """One fill's schedule: level payments, the last one absorbing rounding. O(term)."""
    principals, interests = _parts(principal, rate_bps, term_months)
    return _rows(principals, interests, principal, funded_on)


def borrower_schedule(
    fills: Iterable[tuple[int, int]], term_months: int, funded_on: datetime.date
) -> list[Instalment]:
    """fills are (amount, rate_bps); row n is the sum of every fill's row n. O(fills·term).

    Summing the fills' rows, not re-amortising the total, keeps the lenders' parts adding up
    exactly to what the borrower pays. No fills: term_months rows of zeros.
    """
    principals = [0] * term_months
    interests = [0] * term_months
    total = 0
    for amount, rate_bps in fills:
        fill_principals, fill_interests = _parts(amount, rate_bps, term_months)
        principals = list(map(add, principals, fill_principals))
        interests = list(map(add, interests, fill_interests))
        total += amount
    return _rows(principals, interests, total, funded_on)


def due_date(funded_on: datetime.date, n: int) -> datetime.date:
    """funded_on plus n months, same day of month, clamped to the month's last day. O(1)."""
    year, month0 = divmod(funded_on.year * 12 + funded_on.month - 1 + n, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return datetime.date(year, month0 + 1, min(funded_on.day, last_day))
