"""The matching core: a pure, deterministic loan-auction engine. Commands in, events out."""

from matching.commands import (
    AcceptEarly,
    AdvanceClock,
    CancelListing,
    Command,
    CreateStandingOrder,
    DeleteStandingOrder,
    Deposit,
    ListingTerms,
    OpenListing,
    PlaceBid,
    StoredBids,
    UpdateStandingOrder,
    Withdraw,
)
from matching.engine import Engine, Outcome
from matching.events import (
    BidOutbid,
    BidPlaced,
    Event,
    Fill,
    ListingCancelled,
    ListingFailed,
    ListingFunded,
    ListingOpened,
    Resolution,
    StandingOrderChanged,
)
from matching.ledger import EXTERNAL, FEES, PLATFORM_ACCOUNTS, RESERVE_POOL, Balance, LedgerEntry
from matching.policy import GradePolicy, ListingPolicy
from matching.rejections import Rejection
from matching.rules import MarketRules
from matching.standing_orders import StandingOrderView
from matching.views import BidView, DepthLevel, ListingSummary

__all__ = [
    "EXTERNAL", "FEES", "PLATFORM_ACCOUNTS", "RESERVE_POOL", "AcceptEarly", "AdvanceClock",
    "Balance", "BidOutbid", "BidPlaced", "BidView", "CancelListing", "Command",
    "CreateStandingOrder", "DeleteStandingOrder", "DepthLevel", "Deposit", "Engine", "Event",
    "Fill", "GradePolicy", "LedgerEntry", "ListingCancelled", "ListingFailed", "ListingFunded",
    "ListingOpened", "ListingPolicy", "ListingSummary", "ListingTerms", "MarketRules",
    "OpenListing", "Outcome", "PlaceBid", "Rejection", "Resolution", "StandingOrderChanged",
    "StandingOrderView", "StoredBids", "UpdateStandingOrder", "Withdraw",
]
