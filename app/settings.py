"""Configuration from the environment (`LOAN_AUCTION_*`, `DATABASE_URL`)."""

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.fence.fence import Timings
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
    #: Fernet keys for webhook secrets at rest: the current one first, then previous ones.
    secrets_key: SecretStr | None = None
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
    #: Rows per journal transaction (a backlog of resolutions commits in pieces this size).
    journal_max_batch_rows: int = 20_000
    idempotency_ttl_s: int = 48 * 3600
    #: Serve POST /v1/listings/{id}/bids past FastAPI's per-request machinery (same answers).
    bid_fast_lane: bool = True
    #: Write batches of bids on a libpq connection the journal polls as entries arrive, rather
    #: than on asyncpg's, whose replies wait for a turn of the busy loop (same rows either way).
    journal_lane: bool = True
    #: One JSON line per request on stderr; benchmarks turn it off.
    access_log: bool = True
    #: Per API key, on by default; a platform raises them, a benchmark or a trusted gateway
    #: sets the rate to 0 (off). 50/s with bursts of 100 is more than a person or a bidding bot
    #: needs, and bounds what one leaked key can do.
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    #: Per client address, for requests without a valid key (each refusal, and each lookup of a
    #: key not yet cached, costs a token); 0 turns it off.
    rate_limit_unauthenticated_per_s: float = 5.0
    rate_limit_unauthenticated_burst: int = 100
    #: /metrics on the main port needs `Authorization: Bearer` with this key or an admin key.
    metrics_key: SecretStr | None = None
    #: When set, /metrics is also served without a key on this port (bind it to a private
    #: interface with `metrics_host`), for a Prometheus that cannot send a bearer token.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

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
    #: Deliveries in flight per endpoint, and in all (a hanging endpoint holds only its own).
    webhook_concurrency: int = Field(default=8, ge=1, le=1000)
    webhook_max_in_flight: int = Field(default=256, ge=1, le=10_000)
    #: Attempts and settled deliveries older than this are deleted (events never are).
    webhook_retention_days: float = Field(default=30.0, gt=0)
    #: Let deliveries reach loopback and private addresses: local development and tests only.
    webhook_allow_private: bool = False

    #: Live streams: one idle this long gets a comment (the SSE heartbeat).
    live_heartbeat_s: float = 15.0
    #: Committed events go out to streams in batches this far apart (more with many streams).
    live_flush_s: float = 0.05
    #: A stream further behind than this many events is closed (it resumes with Last-Event-ID).
    live_buffer_events: int = 5_000
    #: Recent events kept in memory for resuming streams; older ones are read from Postgres.
    live_history_events: int = 20_000
    #: Streams may take this share of the service's CPU, as metered (1 = no limit); past it
    #: they wait their turn and fall behind rather than slow bidding (BENCHMARKS.md).
    live_send_share: float = 0.1

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
