"""Automatic bidding when a listing opens: the matching standing orders bid, in queue order,
inside the listing's own command (docs/automation.md).

Each order bids at most once per listing, at `max(min_rate_bps, grade floor)`, for
`min(amount_per_listing, budget left, the lender's available money, the lender's share-cap
room, the room left under the listing's auto-bid cap)`. An order whose amount would fall below
the minimum bid is skipped and keeps its place; so is one whose bid admission refuses. The
opening stops as soon as the auto-bid cap has less room than the minimum bid.
"""

import hashlib
from collections.abc import Callable

from matching.admission import share_room
from matching.book import ListingBook
from matching.commands import PlaceBid
from matching.events import Event, StandingOrderChanged
from matching.ledger import Ledger
from matching.rejections import Rejection
from matching.rules import FULL_BPS, MarketRules
from matching.standing_orders import StandingOrder, StandingOrders

#: Places an admitted-or-refused auto bid through the engine's bid path.
PlaceAuto = Callable[[ListingBook, PlaceBid, StandingOrder], "list[Event] | Rejection"]


def auto_bid_id(listing_id: str, order_id: str) -> str:
    """A UUID for the bid an order places on a listing, derived from the pair (the core makes
    no random ids; an order bids at most once per listing): RFC 9562 UUIDv8 over SHA-256."""
    raw = bytearray(hashlib.sha256(f"{listing_id}\0{order_id}".encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def auto_bid_cap(book: ListingBook) -> int:
    """The most all auto bids on a listing may add up to: amount × share, rounded down."""
    terms = book.terms
    return terms.amount * terms.policy.autobid_max_share_bps // FULL_BPS


def bid_for_orders(
    book: ListingBook, orders: StandingOrders, ledger: Ledger, rules: MarketRules, seq: int,
    at: int, place: PlaceAuto,
) -> list[Event]:
    """Every matching order's bid, in queue order; auto bids take the seqs after `seq`.

    O(log T · log V) to start plus, per order looked at, O(log V · log h) to find it and
    `Engine.place_bid`'s cost to place its bid; the orders that bid then take new tickets
    (O(g · log T · log V) each). Orders that cannot match are never looked at; orders that
    match but are skipped (money, share cap) are.
    """
    terms = book.terms
    min_bid = rules.min_bid_amount
    room = auto_bid_cap(book)
    if room < min_bid:
        return []
    floor = terms.policy.min_rate_bps
    events: list[Event] = []
    bidders: list[StandingOrder] = []
    for order in orders.matching(terms.grade, terms.term_months, terms.max_rate_bps):
        amount = min(
            order.amount_per_listing, order.budget_left, ledger.available(order.lender_id),
            share_room(book, order.lender_id), room,
        )
        if amount < min_bid:
            continue
        bid = PlaceBid(
            terms.listing_id, auto_bid_id(terms.listing_id, order.order_id), order.lender_id,
            amount, max(order.min_rate_bps, floor), seq + 1, at,
        )
        placed = place(book, bid, order)
        if isinstance(placed, Rejection):
            continue
        seq += 1
        room -= amount
        bidders.append(order)
        events.extend(placed)
        if room < min_bid or book.status != "open":
            break
    events.extend(StandingOrderChanged(view, at) for view in orders.took_turns(bidders))
    return events
