"""The matching core: a pure, deterministic loan-auction engine. Commands in, events out."""

from matching.commands import (
    AcceptEarly,
    AdvanceClock,
    CancelListing,
    Command,
    ListingTerms,
    OpenListing,
    PlaceBid,
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
)
from matching.rejections import Rejection
from matching.rules import MarketRules
from matching.views import BidView, DepthLevel, ListingSummary

__all__ = [
    "AcceptEarly", "AdvanceClock", "BidOutbid", "BidPlaced", "BidView", "CancelListing",
    "Command", "DepthLevel", "Engine", "Event", "Fill", "ListingCancelled", "ListingFailed",
    "ListingFunded", "ListingOpened", "ListingSummary", "ListingTerms", "MarketRules",
    "OpenListing", "Outcome", "PlaceBid", "Rejection", "Resolution",
]
