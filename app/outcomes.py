"""What the engine decided, as the rows and outbox events one journal entry writes."""

from typing import Any

from app.clock import format_utc, rfc3339, to_datetime
from app.ids import new_id
from app.journal import Entry
from app.rendering import Json, fill_json, listing_from_summary, source_json
from matching import (
    EXTERNAL,
    BidOutbid,
    BidPlaced,
    Engine,
    Event,
    LedgerEntry,
    ListingCancelled,
    ListingFailed,
    ListingFunded,
    ListingOpened,
    StandingOrderChanged,
)
from matching.events import Resolution


class EntryBuilder:
    """Builds journal entries from engine events. Needs the engine for the closing snapshot
    and for the balances the ledger entries leave behind."""

    def __init__(self, engine: Engine, currency: str) -> None:
        self.engine = engine
        self.currency = currency

    def build(self, events: list[Event]) -> Entry:
        entry = Entry()
        touched: set[str] = set()
        for event in events:
            if isinstance(event, LedgerEntry):
                entry.ledger.append(_ledger_row(event))
                touched.add(event.debit)
                touched.add(event.credit)
            elif isinstance(event, BidPlaced):
                self._bid_placed(entry, event)
            elif isinstance(event, BidOutbid):
                _event(entry, "bid.outbid", event.listing_id, event.at, _outbid_json(event))
            elif isinstance(event, ListingOpened):
                self._listing_opened(entry, event)
            elif isinstance(event, StandingOrderChanged):
                entry.standing_orders.append(_standing_order_row(event))
            else:
                self._resolved(entry, event)
        if touched:
            self._balances(entry, touched, events[-1].at)
        return entry

    def listing_json(self, listing_id: str) -> Json:
        summary = self.engine.summary(listing_id)
        assert summary is not None, "only listings in memory are rendered from the engine"
        return listing_from_summary(summary, self.currency)

    def _balances(self, entry: Entry, accounts: set[str], at: int) -> None:
        """Each touched account's balances after the command: the writer stores the last."""
        held = self.engine.ledger.accounts
        moment = to_datetime(at)
        for account in accounts:
            if account != EXTERNAL:
                balance = held[account]
                entry.balances.append((account, balance.available, balance.reserved, moment))

    def _listing_opened(self, entry: Entry, e: ListingOpened) -> None:
        t, policy = e.terms, e.terms.policy
        entry.listings.append((
            t.listing_id, e.seq, t.borrower_id, t.amount, t.term_months, t.max_rate_bps, t.grade,
            to_datetime(t.closes_at), t.min_funding_bps, t.close_when_funded, t.pricing,
            to_datetime(e.at), policy.min_rate_bps, policy.service_fee_bps, policy.reserve_bps,
            policy.max_lender_share_bps, t.loan_id, policy.autobid_max_share_bps,
            e.auto_bid_count, e.auto_bid_amount,
        ))
        _event(entry, "listing.opened", t.listing_id, e.at, self.listing_json(t.listing_id))

    def _bid_placed(self, entry: Entry, e: BidPlaced) -> None:
        placed_at = to_datetime(e.at)
        order_id = e.standing_order_id
        entry.bids.append(
            (e.bid_id, e.listing_id, e.lender_id, e.amount, e.rate_bps, e.seq, placed_at, order_id)
        )
        _event(entry, "bid.placed", e.listing_id, e.at, {
            "id": e.bid_id, "listing_id": e.listing_id, "lender_id": e.lender_id,
            "amount": e.amount, "min_rate_bps": e.rate_bps, "seq": e.seq,
            "allocated_amount": e.allocated_amount, "placed_at": format_utc(placed_at),
            **source_json(order_id),
        })

    def _resolved(self, entry: Entry, e: Resolution) -> None:
        listing_id = e.listing_id
        listing = self.listing_json(listing_id)
        data: Json = {"listing": listing}
        if isinstance(e, ListingFunded):
            data["loan"] = self._book_loan(entry, e)
        if isinstance(e, ListingFailed):
            data.update(covered=e.covered, required=e.required)
        entry.closes.append((
            listing_id, listing["status"], to_datetime(e.at), listing["close_reason"],
            listing["funded_amount"], listing["bid_count"], listing["marginal_rate_bps"],
            listing["loan_id"],
        ))
        for bid in self.engine.bids(listing_id) or []:
            entry.settled_bids.append((bid.bid_id, bid.status, bid.allocated_amount))
        kind = {ListingFunded: "listing.funded", ListingFailed: "listing.failed",
                ListingCancelled: "listing.cancelled"}[type(e)]
        _event(entry, kind, listing_id, e.at, data)
        entry.released.append(listing_id)

    def _book_loan(self, entry: Entry, e: ListingFunded) -> Json:
        summary = self.engine.summary(e.listing_id)
        assert summary is not None
        t = summary.terms
        entry.loans.append((
            e.loan_id, e.listing_id, t.borrower_id, e.principal, e.rate_bps, e.term_months,
            t.pricing, to_datetime(e.at), e.service_fee, e.reserve_contribution,
        ))
        entry.fills.extend(
            (e.loan_id, f.bid_id, f.lender_id, f.seq, f.amount, f.rate_bps) for f in e.fills
        )
        return {
            "id": e.loan_id, "listing_id": e.listing_id, "borrower_id": t.borrower_id,
            "principal": e.principal, "currency": self.currency, "rate_bps": e.rate_bps,
            "term_months": e.term_months, "pricing": t.pricing, "funded_at": rfc3339(e.at),
            "service_fee": e.service_fee, "reserve_contribution": e.reserve_contribution,
            "disbursed": e.principal - e.service_fee - e.reserve_contribution,
            "fills": [fill_json(f) for f in e.fills],
        }


def _ledger_row(e: LedgerEntry) -> tuple[Any, ...]:
    return (
        e.entry_id, e.kind, e.debit, e.credit, e.amount, e.cause_type, e.cause_id, e.listing_id,
        e.bid_id, e.reference, to_datetime(e.at),
    )


def _standing_order_row(e: StandingOrderChanged) -> tuple[Any, ...]:
    o = e.order
    return (
        o.order_id, o.created_seq, o.lender_id, ",".join(o.grades), o.term_months_min,
        o.term_months_max, o.min_rate_bps, o.amount_per_listing, o.budget, o.active, o.deleted,
        o.ticket, o.reserved, o.settled, to_datetime(o.created_at), to_datetime(e.at),
    )


def _outbid_json(e: BidOutbid) -> Json:
    return {
        "id": e.bid_id, "listing_id": e.listing_id, "lender_id": e.lender_id, "amount": e.amount,
        "min_rate_bps": e.rate_bps, "seq": e.seq, "outbid_by_seq": e.by_seq,
    }


def _event(entry: Entry, kind: str, listing_id: str, at: int, data: Any) -> None:
    # The data stays an object: the audit chain, the batch's JSON and the live hub take it as
    # is (as JSON text, each would parse or escape it again: ~1 µs a bid).
    entry.events.append((new_id(), kind, listing_id, to_datetime(at), data))
