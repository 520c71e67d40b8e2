"""The grade policy table from configuration: defaults, overridden by a TOML file.

`LOAN_AUCTION_POLICY_FILE` names a file with one table per grade, e.g.

    [grades.A]
    min_rate_bps = 800
    service_fee_bps = 100
    reserve_bps = 100

A grade left out, or a field left out of a grade, keeps its default (docs/money.md). A file that
does not parse or breaks a limit stops the service at start with a message naming the field.
"""

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from matching import GradePolicy
from matching.policy import default_grade_policies
from matching.rules import FULL_BPS, Grade

Share = Annotated[StrictInt, Field(ge=0, le=FULL_BPS)]


class PolicyError(Exception):
    """The policy file cannot be used; the message names the file and the field."""


class _GradeRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_rate_bps: Annotated[StrictInt, Field(ge=0)] | None = None
    service_fee_bps: Share | None = None
    reserve_bps: Share | None = None


class _PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grades: dict[Grade, _GradeRow] = {}


class _Table(BaseModel):
    """The merged table, checked as a whole: shares a borrower can pay, floors under the cap."""

    grades: dict[Grade, GradePolicy]
    legal_rate_cap_bps: int

    @model_validator(mode="after")
    def _within_limits(self) -> "_Table":
        for grade, row in self.grades.items():
            if row.service_fee_bps + row.reserve_bps >= FULL_BPS:
                raise ValueError(
                    f"grades.{grade}: service_fee_bps + reserve_bps must be below {FULL_BPS}"
                )
            if row.min_rate_bps > self.legal_rate_cap_bps:
                raise ValueError(
                    f"grades.{grade}.min_rate_bps: above the legal rate cap "
                    f"{self.legal_rate_cap_bps}"
                )
        return self


def load_grade_policies(path: Path | None, legal_rate_cap_bps: int) -> dict[Grade, GradePolicy]:
    """The defaults, with the file's rows over them. Raises PolicyError."""
    table = default_grade_policies()
    if path is not None:
        for grade, row in _read(path).grades.items():
            base = table[grade]
            table[grade] = GradePolicy(
                base.min_rate_bps if row.min_rate_bps is None else row.min_rate_bps,
                base.service_fee_bps if row.service_fee_bps is None else row.service_fee_bps,
                base.reserve_bps if row.reserve_bps is None else row.reserve_bps,
            )
    try:
        _Table(grades=table, legal_rate_cap_bps=legal_rate_cap_bps)
    except ValidationError as error:
        raise PolicyError(f"policy file {path}: {error.errors()[0]['msg']}") from None
    return table


def _read(path: Path) -> _PolicyFile:
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise PolicyError(f"policy file {path}: cannot be read ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"policy file {path}: does not parse: {error}") from None
    try:
        return _PolicyFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PolicyError(f"policy file {path}: {where}: {first['msg']}") from None


def policy_json(table: dict[Grade, GradePolicy]) -> dict[str, dict[str, int]]:
    return {
        grade: {"min_rate_bps": row.min_rate_bps, "service_fee_bps": row.service_fee_bps,
                "reserve_bps": row.reserve_bps}
        for grade, row in table.items()
    }
