"""Grade policy: the band floor, the service fee and the risk-reserve share of each credit grade.

The shell reads the table from configuration and copies one grade's row into every listing when
it opens (`ListingPolicy`), so a later change of the table never alters an open listing and a
replay of the journal sees exactly the policy each listing was opened under.
"""

from dataclasses import dataclass
from typing import Final

from matching.rules import FULL_BPS, Grade

#: 人人贷's risk-reserve table, in bps of the principal, best grade to worst.
DEFAULT_RESERVE_BPS: Final[dict[Grade, int]] = {
    "AA": 0, "A": 100, "B": 150, "C": 200, "D": 250, "E": 300, "HR": 500,
}
#: Auto bids together cover at most this share of a listing, leaving a fifth to manual bids.
DEFAULT_AUTOBID_MAX_SHARE_BPS: Final = 8_000


@dataclass(frozen=True, slots=True)
class GradePolicy:
    """One grade's row of the table."""

    min_rate_bps: int = 0  # the band floor; 0 is no floor
    service_fee_bps: int = 0
    reserve_bps: int = 0


@dataclass(frozen=True, slots=True)
class ListingPolicy:
    """What a listing was opened under: its grade's row and the market-wide caps on one
    lender's share and on the auto bids' share (docs/automation.md)."""

    min_rate_bps: int = 0
    service_fee_bps: int = 0
    reserve_bps: int = 0
    max_lender_share_bps: int = FULL_BPS
    autobid_max_share_bps: int = DEFAULT_AUTOBID_MAX_SHARE_BPS

    @classmethod
    def of(
        cls, grade: GradePolicy, max_lender_share_bps: int,
        autobid_max_share_bps: int = DEFAULT_AUTOBID_MAX_SHARE_BPS,
    ) -> "ListingPolicy":
        return cls(
            grade.min_rate_bps, grade.service_fee_bps, grade.reserve_bps, max_lender_share_bps,
            autobid_max_share_bps,
        )


def default_grade_policies() -> dict[Grade, GradePolicy]:
    return {grade: GradePolicy(reserve_bps=bps) for grade, bps in DEFAULT_RESERVE_BPS.items()}


def share_of(principal: int, bps: int) -> int:
    """principal × bps / 10000, rounded half up to a minor unit. O(1)."""
    return (2 * principal * bps + FULL_BPS) // (2 * FULL_BPS)
