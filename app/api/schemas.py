"""Wire models: what the API accepts (strict, unknown fields rejected) and what it returns."""

import re
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from app.keys.service import MAX_TTL_S

GradeIn = Literal["AA", "A", "B", "C", "D", "E", "HR"]
PricingIn = Literal["pay_as_bid", "uniform"]
#: Amounts and rates are checked by the engine against the market's configured limits, so the
#: answer names the real limit ("a bid is at least 5000"); here only the type is checked.
Money = Annotated[StrictInt, Field(examples=[300_000])]
#: The most money one number in a request may be: a deposit, and a standing order's money, which
#: no market limit bounds, are stored (bigint) and answered as given, so a number past 64 bits
#: is a 422, not a failed journal batch.
MAX_MONEY = 10**15
OrderMoney = Annotated[Money, Field(le=MAX_MONEY)]
Bps = Annotated[StrictInt, Field(examples=[1250])]
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _rfc3339(value: object) -> object:
    """Only an RFC 3339 string with an offset: no Unix timestamps, no naive or partial times."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("give an RFC 3339 date-time with an offset, e.g. 2030-01-31T12:00:00Z")
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
SUBJECT_PATTERN = r"^[A-Za-z0-9_.:@-]+$"
SubjectId = Annotated[str, Field(min_length=1, max_length=128, pattern=SUBJECT_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenListingIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "amount": 300_000, "term_months": 12, "max_rate_bps": 2000, "grade": "B",
        "duration_s": 3600, "min_funding_bps": 7000, "pricing": "uniform",
    }]})
    borrower_id: SubjectId | None = Field(
        None, description="Defaults to the key's subject; an admin must name the borrower."
    )
    amount: Annotated[Money, Field(description="Within the market's limits (default 100,000 to "
                                              "1,000,000,000 minor units).")]
    term_months: Annotated[StrictInt, Field(ge=1, le=60, examples=[12])]
    max_rate_bps: Annotated[Bps, Field(description="1 to the legal cap (default 3,600).")]
    grade: GradeIn
    closes_at: Rfc3339 | None = None
    duration_s: Annotated[StrictInt, Field(ge=1, le=10**9, examples=[3600])] | None = None
    min_funding_bps: Annotated[StrictInt, Field(ge=1, le=10_000)] = 10_000
    close_when_funded: StrictBool = False
    pricing: PricingIn = "pay_as_bid"

    @model_validator(mode="after")
    def _one_deadline(self) -> "OpenListingIn":
        if (self.closes_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of closes_at and duration_s")
        return self


class PlaceBidIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": 50_000, "min_rate_bps": 1250}
    ]})
    amount: Annotated[Money, Field(description="At least the market's minimum bid (default 5,000) "
                                              "and at most the listing's amount.")]
    min_rate_bps: Annotated[Bps, Field(description="1 to the listing's max_rate_bps.")]
    lender_id: SubjectId | None = Field(
        None, description="Defaults to the key's subject; an admin must name the lender."
    )


class ApiKeyIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"role": "lender", "subject": "lender-42"},
        {"role": "lender", "subject": "lender-42", "ttl_s": 7_776_000},
    ]})
    role: Literal["admin", "borrower", "lender"]
    subject: SubjectId = Field(
        description="Not `external` nor `platform:…` (the ledger's system accounts)."
    )
    expires_at: Rfc3339 | None = Field(
        None, description="When the key stops working; in the future, at most ~5 years away."
    )
    ttl_s: Annotated[StrictInt, Field(ge=1, le=MAX_TTL_S)] | None = Field(
        None, description="Or: seconds from now until the key stops working."
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> "ApiKeyIn":
        if self.expires_at is not None and self.ttl_s is not None:
            raise ValueError("give at most one of expires_at and ttl_s")
        return self


EventTypeIn = Literal[
    "listing.opened", "bid.placed", "bid.outbid", "listing.funded", "listing.failed",
    "listing.cancelled",
]


class WebhookEndpointIn(Strict):
    url: Annotated[
        str, Field(max_length=2048, pattern=r"^https?://[^\s/$.?#\x00-\x1f][^\s\x00-\x1f]*$",
                   examples=["https://platform.example/hooks/loans"]),
    ]
    event_types: Annotated[list[EventTypeIn], Field(min_length=1, max_length=6)] | None = Field(
        None, description="Default: listing.funded and listing.failed."
    )
    description: Annotated[str, Field(max_length=500, pattern=r"^[^\x00]*$")] = ""


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None
    created_at: str
    secret: str | None = Field(
        None, description="whsec_… shown once, at creation (null in a replayed answer)."
    )


class WebhookEndpointList(BaseModel):
    data: list[WebhookEndpointOut]


class AttemptOut(BaseModel):
    attempted_at: str
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    event_seq: int
    status: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: str | None
    delivered_at: str | None
    last_error: str | None
    attempt_log: list[AttemptOut]


class DeliveryList(BaseModel):
    data: list[DeliveryOut]


class RedeliveryOut(BaseModel):
    id: str
    endpoint_id: str
    status: str


class RedeliveryList(BaseModel):
    data: list[RedeliveryOut]


class ListingOut(BaseModel):
    id: str
    seq: int
    borrower_id: str
    amount: int
    currency: str
    term_months: int
    max_rate_bps: int
    grade: GradeIn
    closes_at: str
    min_funding_bps: int
    close_when_funded: bool
    pricing: PricingIn
    opened_at: str
    status: Literal["open", "funded", "failed", "cancelled"]
    funded_amount: int
    bid_count: int
    marginal_rate_bps: int | None
    closed_at: str | None
    close_reason: Literal["deadline", "fully_funded", "accepted", "cancelled"] | None
    loan_id: str | None
    policy: "ListingPolicyOut"
    auto_bids: "AutoBidsOut"


class AutoBidsOut(BaseModel):
    count: int = Field(description="Bids the standing orders placed when the listing opened.")
    amount: int


class ListingPage(BaseModel):
    data: list[ListingOut]
    next_cursor: str | None


class BidOut(BaseModel):
    id: str
    listing_id: str
    lender_id: str
    seq: int
    amount: int
    min_rate_bps: int
    status: Literal["active", "outbid", "won", "lost"]
    allocated_amount: int
    placed_at: str | None
    source: Literal["manual", "auto"]
    standing_order_id: str | None = Field(description="The standing order of an auto bid.")


class BidList(BaseModel):
    data: list[BidOut]


class BidPage(BaseModel):
    data: list[BidOut]
    next_cursor: str | None


class DepthLevelOut(BaseModel):
    rate_bps: int
    amount: int
    bid_count: int
    allocated_amount: int


class DepthOut(BaseModel):
    data: list[DepthLevelOut]


class InstalmentOut(BaseModel):
    n: int
    due_date: str
    payment: int
    principal: int
    interest: int
    balance: int


class FillOut(BaseModel):
    bid_id: str
    lender_id: str
    amount: int
    rate_bps: int
    schedule: list[InstalmentOut] | None = None


class LoanOut(BaseModel):
    id: str
    listing_id: str
    borrower_id: str
    principal: int
    currency: str
    rate_bps: int
    term_months: int
    pricing: PricingIn
    funded_at: str
    service_fee: int = Field(description="Paid by the borrower to platform:fees at funding.")
    reserve_contribution: int = Field(
        description="Paid by the borrower to platform:reserve (the risk reserve) at funding."
    )
    disbursed: int = Field(description="What the borrower received: principal less both.")
    fills: list[FillOut]
    schedule: list[InstalmentOut]


class EventOut(BaseModel):
    id: str
    seq: int
    type: str
    created_at: str
    data: dict[str, object]
    hash: str = Field(
        description="SHA-256 (hex) of the previous event's hash followed by this event's"
        " canonical JSON (docs/operations.md, audit chain)"
    )


class EventPage(BaseModel):
    data: list[EventOut]
    next_after: int


class ApiKeyOut(BaseModel):
    id: str
    key: str | None = Field(
        description="Shown once; only its hash is stored, so a replayed answer "
        "(Idempotent-Replayed: true) has null here."
    )
    role: str
    subject: str
    prefix: str = Field(description="The key's first characters, as the key list shows them.")
    created_at: str
    expires_at: str | None


class ApiKeyInfo(BaseModel):
    id: str
    role: str
    subject: str
    prefix: str | None = Field(description="The key's first characters; never the key.")
    created_at: str
    last_used_at: str | None = Field(description="To the minute.")
    expires_at: str | None
    revoked_at: str | None


class ApiKeyPage(BaseModel):
    data: list[ApiKeyInfo]
    next_cursor: str | None


class MoneyIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": 1_000_000, "reference": "bank-transfer-20261128-0042"}
    ]})
    amount: Annotated[StrictInt, Field(ge=1, le=MAX_MONEY, examples=[1_000_000])]
    reference: Annotated[
        str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]*$",
                   description="The payment side's reference, kept on the ledger entry."),
    ]


class AccountOut(BaseModel):
    id: str
    currency: str
    available: int
    reserved: int


class CauseOut(BaseModel):
    type: Literal["bid", "listing", "loan", "deposit", "withdrawal"]
    id: str


class EntryOut(BaseModel):
    id: int
    kind: Literal[
        "deposit", "withdrawal", "reserve", "release", "settle", "fee", "reserve_contribution"
    ]
    debit_account: str
    credit_account: str
    amount: int
    cause: CauseOut
    listing_id: str | None
    bid_id: str | None
    reference: str | None
    created_at: str | None


class EntryPage(BaseModel):
    data: list[EntryOut]
    next_after: int


class MoneyMovedOut(BaseModel):
    entry: EntryOut
    account: AccountOut


class AccountList(BaseModel):
    data: list[AccountOut]


class GradePolicyOut(BaseModel):
    min_rate_bps: int
    service_fee_bps: int
    reserve_bps: int


class PolicyOut(BaseModel):
    grades: dict[GradeIn, GradePolicyOut]
    max_lender_share_bps: int
    autobid_max_share_bps: int
    borrower_limit: int
    currency: str


class ListingPolicyOut(BaseModel):
    min_rate_bps: int
    service_fee_bps: int
    reserve_bps: int
    max_lender_share_bps: int
    autobid_max_share_bps: int


class StandingOrderIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "grades": ["A", "B"], "term_months_min": 6, "term_months_max": 36,
        "min_rate_bps": 1200, "amount_per_listing": 20_000, "budget": 1_000_000,
    }]})
    lender_id: SubjectId | None = Field(
        None, description="Defaults to the key's subject; an admin must name the lender."
    )
    grades: Annotated[list[GradeIn], Field(min_length=1, max_length=7)]
    term_months_min: Annotated[StrictInt, Field(ge=1, le=60, examples=[6])]
    term_months_max: Annotated[StrictInt, Field(ge=1, le=60, examples=[36])]
    min_rate_bps: Bps
    amount_per_listing: OrderMoney
    budget: OrderMoney
    active: StrictBool = True


class StandingOrderPatch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"active": False}, {"budget": 2_000_000},
    ]})
    active: StrictBool | None = None
    budget: OrderMoney | None = None

    @model_validator(mode="after")
    def _something(self) -> "StandingOrderPatch":
        if self.active is None and self.budget is None:
            raise ValueError("give active, budget or both")
        return self


class StandingOrderOut(BaseModel):
    id: str
    lender_id: str
    grades: list[GradeIn]
    term_months_min: int
    term_months_max: int
    min_rate_bps: int
    amount_per_listing: int
    budget: int = Field(description="The most the order may commit: reserved plus settled.")
    active: bool
    reserved: int = Field(description="Held by the order's live auto bids.")
    settled: int = Field(description="Paid out by its auto bids' fills, over its life.")
    budget_left: int
    queue_ticket: int = Field(description="Place in the queue: the smallest bids first.")
    seq: int
    created_at: str


class StandingOrderPage(BaseModel):
    data: list[StandingOrderOut]
    next_cursor: str | None


class Problem(BaseModel):
    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str
    errors: list[dict[str, str]] | None = None
    marginal_rate_bps: int | None = None
    available: int | None = None
