"""What the engine decided, as the rows and outbox events one journal entry writes."""

from typing import Any
from uuid import uuid4

import orjson

from app.clock import format_utc, rfc3339, to_datetime
from app.journal import Entry
from app.rendering import Json, fill_json, listing_from_summary
from matching import (
    BidOutbid,
    BidPlaced,
    Engine,
    Event,
    ListingCancelled,
    ListingFailed,
    ListingFunded,
    ListingOpened,
)
from matching.events import Resolution


class EntryBuilder:
    """Builds journal entries from engine events. Needs the engine for the closing snapshot."""

    def __init__(self, engine: Engine, currency: str) -> None:
        self.engine = engine
        self.currency = currency
        #: loan ids of listings resolved in memory whose books are not yet released.
        self.loan_ids: dict[str, str] = {}

    def build(self, events: list[Event]) -> Entry:
        entry = Entry()
        for event in events:
            if isinstance(event, BidPlaced):
                self._bid_placed(entry, event)
            elif isinstance(event, BidOutbid):
                _event(entry, "bid.outbid", event.listing_id, event.at, _outbid_json(event))
            elif isinstance(event, ListingOpened):
                self._listing_opened(entry, event)
            else:
                self._resolved(entry, event)
        return entry

    def listing_json(self, listing_id: str) -> Json:
        summary = self.engine.summary(listing_id)
        assert summary is not None, "only listings in memory are rendered from the engine"
        return listing_from_summary(summary, self.currency, self.loan_ids.get(listing_id))

    def _listing_opened(self, entry: Entry, e: ListingOpened) -> None:
        t = e.terms
        entry.listings.append((
            t.listing_id, e.seq, t.borrower_id, t.amount, t.term_months, t.max_rate_bps, t.grade,
            to_datetime(t.closes_at), t.min_funding_bps, t.close_when_funded, t.pricing,
            to_datetime(e.at),
        ))
        _event(entry, "listing.opened", t.listing_id, e.at, self.listing_json(t.listing_id))

    def _bid_placed(self, entry: Entry, e: BidPlaced) -> None:
        placed_at = to_datetime(e.at)
        entry.bids.append(
            (e.bid_id, e.listing_id, e.lender_id, e.amount, e.rate_bps, e.seq, placed_at)
        )
        _event(entry, "bid.placed", e.listing_id, e.at, {
            "id": e.bid_id, "listing_id": e.listing_id, "lender_id": e.lender_id,
            "amount": e.amount, "min_rate_bps": e.rate_bps, "seq": e.seq,
            "allocated_amount": e.allocated_amount, "placed_at": format_utc(placed_at),
        })

    def _resolved(self, entry: Entry, e: Resolution) -> None:
        listing_id = e.listing_id
        data: Json = {}
        if isinstance(e, ListingFunded):
            loan_id = self.loan_ids[listing_id] = str(uuid4())
            data["loan"] = self._book_loan(entry, loan_id, e)
        listing = self.listing_json(listing_id)
        data = {"listing": listing, **data}
        if isinstance(e, ListingFailed):
            data.update(covered=e.covered, required=e.required)
        entry.closes.append((
            listing_id, listing["status"], to_datetime(e.at), listing["close_reason"],
            listing["funded_amount"], listing["bid_count"], listing["marginal_rate_bps"],
            self.loan_ids.get(listing_id),
        ))
        for bid in self.engine.bids(listing_id) or []:
            entry.settled_bids.append((bid.bid_id, bid.status, bid.allocated_amount))
        kind = {ListingFunded: "listing.funded", ListingFailed: "listing.failed",
                ListingCancelled: "listing.cancelled"}[type(e)]
        _event(entry, kind, listing_id, e.at, data)
        entry.released.append(listing_id)

    def _book_loan(self, entry: Entry, loan_id: str, e: ListingFunded) -> Json:
        terms = self.engine.summary(e.listing_id)
        assert terms is not None
        t = terms.terms
        entry.loans.append((
            loan_id, e.listing_id, t.borrower_id, e.principal, e.rate_bps, e.term_months,
            t.pricing, to_datetime(e.at),
        ))
        entry.fills.extend(
            (loan_id, f.bid_id, f.lender_id, f.seq, f.amount, f.rate_bps) for f in e.fills
        )
        return {
            "id": loan_id, "listing_id": e.listing_id, "borrower_id": t.borrower_id,
            "principal": e.principal, "currency": self.currency, "rate_bps": e.rate_bps,
            "term_months": e.term_months, "pricing": t.pricing, "funded_at": rfc3339(e.at),
            "fills": [fill_json(f) for f in e.fills],
        }


def _outbid_json(e: BidOutbid) -> Json:
    return {
        "id": e.bid_id, "listing_id": e.listing_id, "lender_id": e.lender_id, "amount": e.amount,
        "min_rate_bps": e.rate_bps, "seq": e.seq, "outbid_by_seq": e.by_seq,
    }


def _event(entry: Entry, kind: str, listing_id: str, at: int, data: Any) -> None:
    body = orjson.dumps(data).decode()
    entry.events.append((str(uuid4()), kind, listing_id, to_datetime(at), body))
