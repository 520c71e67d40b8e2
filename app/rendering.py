"""Wire shapes: engine views and Postgres rows rendered to the same JSON objects."""

from typing import Any

from app.clock import format_utc, rfc3339
from matching import (
    Balance,
    BidPlaced,
    BidView,
    DepthLevel,
    LedgerEntry,
    ListingSummary,
    StandingOrderView,
)
from matching.events import Fill

Json = dict[str, Any]


def listing_from_summary(s: ListingSummary, currency: str) -> Json:
    t, p = s.terms, s.terms.policy
    return {
        "id": t.listing_id, "seq": s.opened_seq, "borrower_id": t.borrower_id,
        "amount": t.amount, "currency": currency, "term_months": t.term_months,
        "max_rate_bps": t.max_rate_bps, "grade": t.grade, "closes_at": rfc3339(t.closes_at),
        "min_funding_bps": t.min_funding_bps, "close_when_funded": t.close_when_funded,
        "pricing": t.pricing, "opened_at": rfc3339(s.opened_at), "status": s.status,
        "funded_amount": s.funded_amount, "bid_count": s.bid_count,
        "marginal_rate_bps": s.marginal_rate_bps, "closed_at": rfc3339(s.closed_at),
        "close_reason": s.close_reason,
        "loan_id": t.loan_id if s.status == "funded" else None,
        "policy": _policy(p.min_rate_bps, p.service_fee_bps, p.reserve_bps, p.max_lender_share_bps,
                          p.autobid_max_share_bps),
        "auto_bids": {"count": s.auto_bid_count, "amount": s.auto_bid_amount},
    }


def listing_from_row(row: Any, currency: str) -> Json:
    return {
        "id": str(row["id"]), "seq": row["seq"], "borrower_id": row["borrower_id"],
        "amount": row["amount"], "currency": currency, "term_months": row["term_months"],
        "max_rate_bps": row["max_rate_bps"], "grade": row["grade"],
        "closes_at": _time(row["closes_at"]), "min_funding_bps": row["min_funding_bps"],
        "close_when_funded": row["close_when_funded"], "pricing": row["pricing"],
        "opened_at": _time(row["opened_at"]), "status": row["status"],
        "funded_amount": row["funded_amount"] or 0, "bid_count": row["bid_count"] or 0,
        "marginal_rate_bps": row["marginal_rate_bps"], "closed_at": _time(row["closed_at"]),
        "close_reason": row["close_reason"],
        "loan_id": str(row["loan_id"]) if row["status"] == "funded" else None,
        "policy": _policy(row["floor_rate_bps"], row["service_fee_bps"], row["reserve_bps"],
                          row["max_lender_share_bps"], row["autobid_max_share_bps"]),
        "auto_bids": {"count": row["auto_bid_count"], "amount": row["auto_bid_amount"]},
    }


def _policy(
    floor_bps: int, fee_bps: int, reserve_bps: int, share_bps: int, autobid_bps: int
) -> Json:
    """The grade policy a listing opened under (it never changes afterwards)."""
    return {
        "min_rate_bps": floor_bps, "service_fee_bps": fee_bps, "reserve_bps": reserve_bps,
        "max_lender_share_bps": share_bps, "autobid_max_share_bps": autobid_bps,
    }


def placed_bid_json(e: BidPlaced) -> Json:
    """A bid just placed on a listing still open, as `bid_from_view` renders it then: active
    (an accepted bid is in the funding set) with the allocation the engine gave it."""
    return {
        "id": e.bid_id, "listing_id": e.listing_id, "lender_id": e.lender_id, "seq": e.seq,
        "amount": e.amount, "min_rate_bps": e.rate_bps, "status": "active",
        "allocated_amount": e.allocated_amount, "placed_at": rfc3339(e.at),
        **source_json(e.standing_order_id),
    }


def bid_from_view(v: BidView) -> Json:
    return {
        "id": v.bid_id, "listing_id": v.listing_id, "lender_id": v.lender_id, "seq": v.seq,
        "amount": v.amount, "min_rate_bps": v.rate_bps, "status": v.status,
        "allocated_amount": v.allocated_amount, "placed_at": rfc3339(v.placed_at),
        **source_json(v.standing_order_id),
    }


def bid_from_row(row: Any) -> Json:
    return {
        "id": str(row["id"]), "listing_id": str(row["listing_id"]),
        "lender_id": row["lender_id"], "seq": row["seq"], "amount": row["amount"],
        "min_rate_bps": row["min_rate_bps"], "status": row["status"],
        "allocated_amount": row["allocated_amount"] or 0, "placed_at": _time(row["placed_at"]),
        **source_json(_str(row["standing_order_id"])),
    }


def source_json(standing_order_id: str | None) -> Json:
    """Who placed a bid: the lender by hand, or one of its standing orders."""
    return {
        "source": "manual" if standing_order_id is None else "auto",
        "standing_order_id": standing_order_id,
    }


def standing_order_json(o: StandingOrderView) -> Json:
    return {
        "id": o.order_id, "lender_id": o.lender_id, "grades": list(o.grades),
        "term_months_min": o.term_months_min, "term_months_max": o.term_months_max,
        "min_rate_bps": o.min_rate_bps, "amount_per_listing": o.amount_per_listing,
        "budget": o.budget, "active": o.active, "reserved": o.reserved, "settled": o.settled,
        "budget_left": o.budget_left, "queue_ticket": o.ticket, "seq": o.created_seq,
        "created_at": rfc3339(o.created_at),
    }


def depth_level(level: DepthLevel) -> Json:
    return {
        "rate_bps": level.rate_bps, "amount": level.amount, "bid_count": level.bid_count,
        "allocated_amount": level.allocated_amount,
    }


def fill_json(f: Fill) -> Json:
    return {
        "bid_id": f.bid_id,
        "lender_id": f.lender_id,
        "amount": f.amount,
        "rate_bps": f.rate_bps,
    }


def account_json(account_id: str, balance: Balance, currency: str) -> Json:
    return {
        "id": account_id, "currency": currency, "available": balance.available,
        "reserved": balance.reserved,
    }


def entry_json(e: LedgerEntry) -> Json:
    return _entry(
        e.entry_id, e.kind, e.debit, e.credit, e.amount, e.cause_type, e.cause_id, e.listing_id,
        e.bid_id, e.reference, rfc3339(e.at),
    )


def entry_from_row(row: Any) -> Json:
    return _entry(
        row["id"], row["kind"], row["debit_account"], row["credit_account"], row["amount"],
        row["cause_type"], str(row["cause_id"]), _str(row["listing_id"]), _str(row["bid_id"]),
        row["reference"], _time(row["created_at"]),
    )


def _entry(
    entry_id: int, kind: str, debit: str, credit: str, amount: int, cause_type: str,
    cause_id: str, listing_id: str | None, bid_id: str | None, reference: str | None,
    created_at: str | None,
) -> Json:
    """One ledger entry, the same whether it comes from the engine or from Postgres."""
    return {
        "id": entry_id, "kind": kind, "debit_account": debit, "credit_account": credit,
        "amount": amount, "cause": {"type": cause_type, "id": cause_id},
        "listing_id": listing_id, "bid_id": bid_id, "reference": reference,
        "created_at": created_at,
    }


def event_from_row(row: Any) -> Json:
    return {
        "id": str(row["id"]),
        "seq": row["seq"],
        "type": row["type"],
        "created_at": _time(row["created_at"]),
        "data": row["data"],
        "hash": row["hash"],
    }


def _time(moment: Any) -> str | None:
    return None if moment is None else format_utc(moment)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
