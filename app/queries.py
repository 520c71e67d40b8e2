"""The service layer for reads: open listings from the engine, closed ones from Postgres."""

from datetime import date
from typing import Any

from app.auth import Principal
from app.clock import format_utc
from app.errors import NotFound
from app.ids import parse_id
from app.market import Market, canonical_id
from app.pagination import decode_cursor, page
from app.rendering import (
    Json,
    bid_from_row,
    bid_from_view,
    depth_level,
    event_from_row,
    listing_from_row,
)
from app.store import Store
from matching.schedule import Instalment, borrower_schedule, fill_schedule


class Queries:
    def __init__(self, market: Market, store: Store, currency: str) -> None:
        self.market = market
        self.store = store
        self.currency = currency

    async def listing(self, listing_id: str) -> Json:
        listing_id = canonical_id(listing_id)
        await self.market.settled(listing_id)
        if self.market.engine.summary(listing_id) is not None:
            return self.market.entries.listing_json(listing_id)
        return listing_from_row(await self.market.stored_listing(listing_id), self.currency)

    async def listings(
        self, status: str | None, grade: str | None, cursor: str | None, limit: int
    ) -> Json:
        rows = await self.store.listings(status, grade, decode_cursor(cursor), limit)
        data = [await self._listing_or_live(row) for row in rows]
        return page(data, rows, limit)

    async def listing_bids(self, who: Principal, listing_id: str) -> Json:
        listing_id = canonical_id(listing_id)
        await self.market.settled(listing_id)
        views = self.market.engine.bids(listing_id)
        if views is not None:
            return {"data": _as_seen_by(who, [bid_from_view(v) for v in views])}
        row = await self.market.stored_listing(listing_id)
        bids = [bid_from_row(b) for b in await self.store.listing_bids(row["id"])]
        return {"data": _as_seen_by(who, bids)}

    async def depth(self, listing_id: str) -> Json:
        listing_id = canonical_id(listing_id)
        await self.market.settled(listing_id)
        levels = self.market.engine.depth(listing_id)
        if levels is not None:
            return {"data": [depth_level(level) for level in levels]}
        row = await self.market.stored_listing(listing_id)
        merged: dict[int, Json] = {}
        for bid in await self.store.listing_bids(row["id"]):
            level = merged.setdefault(
                bid["min_rate_bps"],
                {
                    "rate_bps": bid["min_rate_bps"],
                    "amount": 0,
                    "bid_count": 0,
                    "allocated_amount": 0,
                },
            )
            level["amount"] += bid["amount"]
            level["bid_count"] += 1
            level["allocated_amount"] += bid["allocated_amount"] or 0
        return {"data": list(merged.values())}

    async def bid(self, who: Principal, bid_id: str) -> Json:
        who.require("lender", "admin")  # a borrower key with the same subject is not the owner
        row = await self.store.bid(parse_id(bid_id, "bid_not_found"))
        if row is None:
            raise NotFound("bid_not_found", "no bid with this id")
        who.require_subject(row["lender_id"])
        return _as_seen_by(who, [await self._bid_live(row)])[0]

    async def lender_bids(
        self, who: Principal, lender_id: str, cursor: str | None, limit: int
    ) -> Json:
        who.require("lender", "admin")
        who.require_subject(lender_id)
        rows = await self.store.lender_bids(lender_id, decode_cursor(cursor), limit)
        return page(_as_seen_by(who, [await self._bid_live(r) for r in rows]), rows, limit)

    async def loan(self, who: Principal, loan_id: str, with_fill_schedules: bool) -> Json:
        found = await self.store.loan(parse_id(loan_id, "loan_not_found"))
        if found is None:
            raise NotFound("loan_not_found", "no loan with this id")
        loan, fills = found
        funded_on = loan["funded_at"].date()
        term = loan["term_months"]
        body: Json = {
            "id": str(loan["id"]),
            "listing_id": str(loan["listing_id"]),
            "borrower_id": loan["borrower_id"],
            "principal": loan["principal"],
            "currency": self.currency,
            "rate_bps": loan["rate_bps"],
            "term_months": term,
            "pricing": loan["pricing"],
            "funded_at": format_utc(loan["funded_at"]),
            "service_fee": loan["service_fee"],
            "reserve_contribution": loan["reserve_contribution"],
            "disbursed": loan["principal"] - loan["service_fee"] - loan["reserve_contribution"],
            "fills": _as_seen_by(who, [_fill(f) for f in fills]),
            "schedule": _rows(
                borrower_schedule(((f["amount"], f["rate_bps"]) for f in fills), term, funded_on)
            ),
        }
        if with_fill_schedules:
            for fill, raw in zip(body["fills"], fills, strict=True):
                fill["schedule"] = _rows(
                    fill_schedule(raw["amount"], raw["rate_bps"], term, funded_on)
                )
        return body

    async def events(self, after: int, limit: int, types: list[str] | None) -> Json:
        rows = await self.store.events(after, limit, types)
        return {
            "data": [event_from_row(r) for r in rows],
            "next_after": rows[-1]["seq"] if rows else after,
        }

    async def event(self, event_id: str) -> Json:
        row = await self.store.event(parse_id(event_id, "event_not_found"))
        if row is None:
            raise NotFound("event_not_found", "no event with this id")
        return event_from_row(row)

    # --- internals --------------------------------------------------------------------------

    async def _listing_or_live(self, row: Any) -> Json:
        listing_id = str(row["id"])
        if self.market.is_resolving(listing_id):
            return await self.listing(listing_id)  # the row may be stale once it commits
        if self.market.engine.summary(listing_id) is not None:
            return self.market.entries.listing_json(listing_id)
        return listing_from_row(row, self.currency)

    async def _bid_live(self, row: Any) -> Json:
        listing_id = str(row["listing_id"])
        if self.market.is_resolving(listing_id):
            await self.market.settled(listing_id)
            fresh = await self.store.bid(row["id"])
            row = fresh if fresh is not None else row
        view = self.market.engine.bid(listing_id, row["seq"])
        return bid_from_row(row) if view is None else bid_from_view(view)


def _as_seen_by(who: Principal, items: list[Json]) -> list[Json]:
    """Lenders do not see each other: each item's `lender_id` as `who` may see it (in place).
    The one place reads mask ids; free for an admin, one comparison a row otherwise."""
    if who.role != "admin":
        for item in items:
            item["lender_id"] = who.shown(item["lender_id"])
    return items


def _fill(row: Any) -> Json:
    return {
        "bid_id": str(row["bid_id"]),
        "lender_id": row["lender_id"],
        "amount": row["amount"],
        "rate_bps": row["rate_bps"],
    }


def _rows(schedule: list[Instalment]) -> list[Json]:
    return [
        {
            "n": i.n,
            "due_date": _day(i.due_date),
            "payment": i.payment,
            "principal": i.principal,
            "interest": i.interest,
            "balance": i.balance,
        }
        for i in schedule
    ]


def _day(d: date) -> str:
    return d.isoformat()
