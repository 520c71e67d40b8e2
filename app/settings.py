"""Configuration from the environment (`LOAN_AUCTION_*`, `DATABASE_URL`)."""

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.fence.fence import Timings
from matching import MarketRules


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

    pool_min_size: int = 2
    pool_max_size: int = 10
    db_timeout_s: float = 5.0
    journal_max_batch: int = 5_000
    #: Benchmark baseline only: acknowledge writes without storing them. Never in production.
    journal_enabled: bool = True
    idempotency_ttl_s: int = 48 * 3600
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = 100

    #: One writer, hot standbys. The writer renews a lease every heartbeat; a standby polls
    #: for the fence and takes over from a writer that died at once, or from one whose lease
    #: is older than `fence_lease_s` (paused, cut off) after ending its sessions. The lease must
    #: outlast a healthy writer's longest stall (rebuilding its largest books). A takeover
    #: waits up to `fence_takeover_wait_s` for the old writer's commits in flight.
    fence_heartbeat_s: float = 1.0
    fence_lease_s: float = 5.0
    fence_poll_s: float = 0.1
    fence_takeover_wait_s: float = 5.0

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
        )

    @model_validator(mode="after")
    def _lease_outlasts_heartbeats(self) -> "Settings":
        if self.fence_lease_s < 2 * self.fence_heartbeat_s:
            raise ValueError("fence_lease_s must be at least twice fence_heartbeat_s")
        return self

    def fence_timings(self) -> Timings:
        return Timings(
            self.fence_heartbeat_s, self.fence_lease_s, self.fence_poll_s,
            self.fence_takeover_wait_s, self.db_timeout_s,
        )

    def retry_schedule(self) -> list[float]:
        return [float(s) for s in self.webhook_retry_schedule.split(",") if s.strip()]
