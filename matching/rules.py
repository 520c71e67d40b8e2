"""Market rules: the configurable limits every listing and bid is checked against."""

from dataclasses import dataclass
from typing import Final, Literal

Grade = Literal["AA", "A", "B", "C", "D", "E", "HR"]
Pricing = Literal["pay_as_bid", "uniform"]

GRADES: Final[tuple[Grade, ...]] = ("AA", "A", "B", "C", "D", "E", "HR")
PRICINGS: Final[tuple[Pricing, ...]] = ("pay_as_bid", "uniform")

MICROS_PER_SECOND: Final = 1_000_000
FULL_BPS: Final = 10_000


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Limits from config. Times are microseconds, money minor units, rates basis points."""

    min_listing_amount: int = 100_000
    max_listing_amount: int = 1_000_000_000
    min_window_us: int = 1 * MICROS_PER_SECOND
    max_window_us: int = 30 * 24 * 3600 * MICROS_PER_SECOND
    min_bid_amount: int = 5_000
    legal_rate_cap_bps: int = 3_600
    max_term_months: int = 60
    #: A borrower's open listings plus funded principal may not exceed this; 0 is no limit.
    borrower_limit: int = 0


def required_coverage(amount: int, min_funding_bps: int) -> int:
    """ceil(amount × min_funding_bps / 10000): the least principal that lets a loan go ahead."""
    return -(-amount * min_funding_bps // FULL_BPS)
