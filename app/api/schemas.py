"""Wire models: what the API accepts (strict, unknown fields rejected) and what it returns."""

from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

GradeIn = Literal["AA", "A", "B", "C", "D", "E", "HR"]
PricingIn = Literal["pay_as_bid", "uniform"]
Money = Annotated[StrictInt, Field(ge=0, le=10**15, examples=[300_000])]
Bps = Annotated[StrictInt, Field(ge=0, le=100_000, examples=[1250])]
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
    amount: Money
    term_months: Annotated[StrictInt, Field(ge=1, le=60, examples=[12])]
    max_rate_bps: Bps
    grade: GradeIn
    closes_at: AwareDatetime | None = None
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
    amount: Money
    min_rate_bps: Bps
    lender_id: SubjectId | None = Field(
        None, description="Defaults to the key's subject; an admin must name the lender."
    )


class ApiKeyIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"role": "lender", "subject": "lender-42"}
    ]})
    role: Literal["admin", "borrower", "lender"]
    subject: SubjectId


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
    secret: str | None = Field(None, description="whsec_… shown once, at creation.")


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


class EventPage(BaseModel):
    data: list[EventOut]
    next_after: int


class ApiKeyOut(BaseModel):
    id: str
    key: str = Field(description="Shown once; only its hash is stored.")
    role: str
    subject: str
    created_at: str


class MoneyIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"amount": 1_000_000, "reference": "bank-transfer-20261128-0042"}
    ]})
    amount: Annotated[StrictInt, Field(ge=1, le=10**15, examples=[1_000_000])]
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
    amount_per_listing: Money
    budget: Money
    active: StrictBool = True


class StandingOrderPatch(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"active": False}, {"budget": 2_000_000},
    ]})
    active: StrictBool | None = None
    budget: Money | None = None

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
