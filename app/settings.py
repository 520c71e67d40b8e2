"""Configuration from the environment (`LOAN_AUCTION_*`, `DATABASE_URL`)."""

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.policy import load_grade_policies
from matching import GradePolicy, MarketRules
from matching.rules import Grade


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOAN_AUCTION_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "LOAN_AUCTION_DATABASE_URL")
    )
    data_dir: Path = Path(".data")
    admin_key: SecretStr | None = None
    currency: str = "CNY"
    host: str = "127.0.0.1"
    port: int = 8000

    min_listing_amount: int = 100_000
    max_listing_amount: int = 1_000_000_000
    min_window_s: int = 1
    max_window_s: int = 30 * 24 * 3600
    min_bid_amount: int = 5_000
    legal_rate_cap_bps: int = 3_600
    max_body_bytes: int = 64 * 1024

    #: TOML file with the per-grade policy table (floors, fees, reserve shares); see app/policy.py.
    policy_file: Path | None = None
    #: One lender's live bids on one listing, as a share of its amount; 10000 is no cap.
    max_lender_share_bps: Annotated[int, Field(ge=1, le=10_000)] = 10_000
    #: A borrower's open listings plus funded principal, minor units; 0 is no limit.
    borrower_limit: Annotated[int, Field(ge=0)] = 0
    #: All standing orders' bids on one listing, as a share of its amount (docs/automation.md).
    autobid_max_share_bps: Annotated[int, Field(ge=1, le=10_000)] = 8_000

    pool_min_size: int = 2
    pool_max_size: int = 10
    db_timeout_s: float = 5.0
    journal_max_batch: int = 5_000
    #: Benchmark baseline only: acknowledge writes without storing them. Never in production.
    journal_enabled: bool = True
    idempotency_ttl_s: int = 48 * 3600
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = 100

    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_s: float = 10.0
    webhook_poll_s: float = 1.0

    def market_rules(self) -> MarketRules:
        return MarketRules(
            min_listing_amount=self.min_listing_amount,
            max_listing_amount=self.max_listing_amount,
            min_window_us=self.min_window_s * 1_000_000,
            max_window_us=self.max_window_s * 1_000_000,
            min_bid_amount=self.min_bid_amount,
            legal_rate_cap_bps=self.legal_rate_cap_bps,
            borrower_limit=self.borrower_limit,
        )

    def grade_policies(self) -> dict[Grade, GradePolicy]:
        """The per-grade table (defaults under the policy file). Raises PolicyError."""
        return load_grade_policies(self.policy_file, self.legal_rate_cap_bps)

    def retry_schedule(self) -> list[float]:
        return [float(s) for s in self.webhook_retry_schedule.split(",") if s.strip()]
