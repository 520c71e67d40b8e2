"""The engine: every open listing's book, the deadline queue, the custody ledger and the
standing orders.

Deterministic and synchronous: the same commands give the same events. A command returns either
the events it caused or a `Rejection` (nothing changed). An exception here means a bug.
"""

from sortedcontainers import SortedList

from matching import admission
from matching import rejections as r
from matching.admission import admit_bid  # bound here: it runs once per bid
from matching.autobid import bid_for_orders
from matching.book import ListingBook
from matching.commands import (
    AcceptEarly,
    AdvanceClock,
    CancelListing,
    Command,
    CreateStandingOrder,
    DeleteStandingOrder,
    Deposit,
    OpenListing,
    PlaceBid,
    StoredBids,
    UpdateStandingOrder,
    Withdraw,
)
from matching.events import (
    BidPlaced,
    CloseReason,
    Event,
    ListingFunded,
    ListingOpened,
    StandingOrderChanged,
)
from matching.ledger import EXTERNAL, Balance, Ledger
from matching.resolution import cancel, release_outbid, resolve
from matching.rules import MarketRules
from matching.standing_orders import StandingOrder, StandingOrders, StandingOrderView
from matching.views import BidView, DepthLevel, ListingSummary, bid_view, depth, summary

Outcome = list[Event] | r.Rejection


class Engine:
    """Holds the books and the ledger. Closed books stay (read-only) until `release`."""

    def __init__(self, rules: MarketRules) -> None:
        self.rules = rules
        self.ledger = Ledger()
        self._books: dict[str, ListingBook] = {}
        # (closes_at, opened_seq, listing_id) of every open listing: one ordered queue, no timers.
        self._deadlines: SortedList[tuple[int, int, str]] = SortedList()
        # Per borrower: open listings' amounts plus funded principal (the borrower limit's base).
        self._exposure: dict[str, int] = {}
        self.orders = StandingOrders(rules)

    def execute(self, command: Command) -> Outcome:
        """Dispatch any command; the typed methods below are the fast path."""
        if isinstance(command, PlaceBid):
            return self.place_bid(command)
        if isinstance(command, OpenListing):
            return self.open_listing(command)
        if isinstance(command, AcceptEarly):
            return self.accept_early(command)
        if isinstance(command, CancelListing):
            return self.cancel_listing(command)
        if isinstance(command, Deposit):
            return self.deposit(command)
        if isinstance(command, Withdraw):
            return self.withdraw(command)
        if isinstance(command, CreateStandingOrder | UpdateStandingOrder | DeleteStandingOrder):
            return self.change_standing_order(command)
        return self.advance_clock(command)

    # --- commands ---------------------------------------------------------------------------

    def open_listing(self, cmd: OpenListing) -> Outcome:
        """O(log L) for the deadline queue, plus the standing orders' bids (`autobid`): they
        follow the opening in the same command and take the seqs after `cmd.seq`."""
        terms = cmd.terms
        if terms.listing_id in self._books:
            return r.Rejection(r.LISTING_EXISTS, "id already used", "listing_id")
        exposure = self._exposure.get(terms.borrower_id, 0)
        rejection = admission.check_terms(terms, cmd.at, self.rules) or (
            admission.check_borrower_limit(terms, exposure, self.rules)
        )
        if rejection is not None:
            return rejection
        book = self._add_listing(cmd)
        auto = bid_for_orders(
            book, self.orders, self.ledger, self.rules, cmd.seq, cmd.at, self._place
        )
        opened = ListingOpened(
            terms, cmd.seq, cmd.at, len(book.auto_orders or ()), book.auto_amount
        )
        return [opened, *auto]

    def place_bid(self, cmd: PlaceBid) -> Outcome:
        """O(log R) among the book's R rate levels (O(R) for a new level), plus O(1) per bid
        pushed out (plus the resolution if it closes); `ListingBook.add`."""
        book = self._books.get(cmd.listing_id)
        if book is None:
            return r.Rejection(r.LISTING_NOT_FOUND, "no open listing with this id")
        return self._place(book, cmd, None)

    def change_standing_order(
        self, cmd: CreateStandingOrder | UpdateStandingOrder | DeleteStandingOrder
    ) -> Outcome:
        """Create, pause/resume/re-budget or delete a standing order. O(g · log T · log V)
        for the index (docs/automation.md)."""
        if isinstance(cmd, CreateStandingOrder):
            changed = self.orders.create(cmd)
        elif isinstance(cmd, UpdateStandingOrder):
            changed = self.orders.update(cmd)
        else:
            changed = self.orders.delete(cmd)
        if isinstance(changed, r.Rejection):
            return changed
        return [StandingOrderChanged(changed, cmd.at)]

    def accept_early(self, cmd: AcceptEarly) -> Outcome:
        book = self._open_book(cmd.listing_id, cmd.at)
        if isinstance(book, r.Rejection):
            return book
        if not book.meets_min_funding:
            return r.Rejection(
                r.BELOW_MIN_FUNDING,
                f"coverage {book.covered} is below the {book.required} required",
            )
        return self._close(book, cmd.at, "accepted")

    def cancel_listing(self, cmd: CancelListing) -> Outcome:
        book = self._open_book(cmd.listing_id, cmd.at)
        if isinstance(book, r.Rejection):
            return book
        return self._close(book, cmd.at, "cancelled")

    def advance_clock(self, cmd: AdvanceClock) -> Outcome:
        """Resolve the listings due at or before `cmd.at` (at most `cmd.max_listings`), in
        deadline order. O(k log L) for k resolved."""
        events: list[Event] = []
        deadlines = self._deadlines
        budget = len(deadlines) if cmd.max_listings is None else cmd.max_listings
        while deadlines and deadlines[0][0] <= cmd.at and budget > 0:
            budget -= 1
            closes_at, _, listing_id = deadlines[0]
            events.extend(self._close(self._books[listing_id], closes_at, "deadline"))
        return events

    def deposit(self, cmd: Deposit) -> Outcome:
        """Money arrived in custody. O(1)."""
        if cmd.account_id == EXTERNAL:
            return r.Rejection(r.ACCOUNT_NOT_ALLOWED, "money cannot be held by `external`")
        if cmd.amount < 1:
            return r.Rejection(r.AMOUNT_OUT_OF_RANGE, "a deposit is at least 1", "amount")
        return [self.ledger.deposit(
            cmd.account_id, cmd.amount, cmd.deposit_id, cmd.at, cmd.reference
        )]

    def withdraw(self, cmd: Withdraw) -> Outcome:
        """Money leaves custody; only available money can. O(1)."""
        balance = self.ledger.accounts.get(cmd.account_id)
        if balance is None:
            return r.Rejection(r.ACCOUNT_NOT_FOUND, "no account with this id")
        if cmd.amount < 1:
            return r.Rejection(r.AMOUNT_OUT_OF_RANGE, "a withdrawal is at least 1", "amount")
        if balance.available < cmd.amount:
            return admission.insufficient_funds(balance.available, cmd.amount)
        return [self.ledger.withdraw(
            cmd.account_id, cmd.amount, cmd.withdrawal_id, cmd.at, cmd.reference
        )]

    # --- recovery: put back what storage holds, without re-running admission ------------------

    def restore_listing(self, cmd: OpenListing) -> None:
        self._add_listing(cmd)

    def restore_bids(self, stored: StoredBids) -> bool:
        """Replay a listing's stored bids, in seq order, after those already in its book: the
        book comes out as if each had been placed in turn. The money they reserved is in the
        restored balances (and, for auto bids, in their restored orders). At most
        `ListingBook.add`'s cost a bid; less for bids short of the amount (`ListingBook.restore`).
        Returns whether they took that fast path.
        """
        lenders = [self.ledger.account_id(lender) for lender in stored.lender_ids]
        book = self._books[stored.listing_id]
        first = book.bid_count
        fast = book.restore(
            stored.bid_ids, lenders, stored.amounts, stored.rates_bps, stored.seqs,
            stored.placed_at,
        )
        if stored.standing_order_ids is not None:
            for index, order_id in enumerate(stored.standing_order_ids, first):
                if order_id is not None:
                    book.mark_auto(index, order_id)
        return fast

    def restore_standing_order(self, stored: StandingOrderView) -> None:
        self.orders.restore(stored)

    def restore_ticket_numbering(self, last_ticket: int) -> None:
        """Continue the queue's tickets after the last one ever handed out."""
        self.orders.last_ticket = last_ticket

    def restore_account(self, account: str, available: int, reserved: int) -> None:
        self.ledger.restore(account, available, reserved)

    def restore_funded_principal(self, borrower_id: str, principal: int) -> None:
        self._exposure[borrower_id] = self._exposure.get(borrower_id, 0) + principal

    def restore_entry_numbering(self, last_entry_id: int) -> None:
        """Continue numbering ledger entries after the last one stored."""
        self.ledger.last_entry_id = last_entry_id

    # --- housekeeping -----------------------------------------------------------------------

    def release(self, listing_id: str) -> None:
        """Forget a closed listing once its resolution is stored; reads then go to storage."""
        book = self._books.get(listing_id)
        if book is not None and book.status != "open":
            del self._books[listing_id]

    def next_deadline(self) -> int | None:
        """The earliest `closes_at` of any open listing. O(1)."""
        return self._deadlines[0][0] if self._deadlines else None

    def open_listing_ids(self) -> list[str]:
        return [b.terms.listing_id for b in self._books.values() if b.status == "open"]

    # --- reads ------------------------------------------------------------------------------

    def summary(self, listing_id: str) -> ListingSummary | None:
        book = self._books.get(listing_id)
        return None if book is None else summary(book)

    def bids(self, listing_id: str) -> list[BidView] | None:
        """The book in priority order (funding set, then outbid). O(n)."""
        book = self._books.get(listing_id)
        return None if book is None else [bid_view(book, i) for i in book.priority_order()]

    def bid(self, listing_id: str, seq: int) -> BidView | None:
        """One bid by its seq. O(log n)."""
        book = self._books.get(listing_id)
        index = None if book is None else book.index_of_seq(seq)
        return None if book is None or index is None else bid_view(book, index)

    def depth(self, listing_id: str) -> list[DepthLevel] | None:
        book = self._books.get(listing_id)
        return None if book is None else depth(book)

    def standing_order(self, order_id: str) -> StandingOrderView | None:
        """A standing order that is not deleted. O(1)."""
        return self.orders.view(order_id)

    def balance(self, account: str) -> Balance | None:
        """An account's balances (a copy), None if no money ever reached it. O(1)."""
        found = self.ledger.accounts.get(account)
        return None if found is None else Balance(found.available, found.reserved)

    def live_reserved(self) -> dict[str, int]:
        """Each lender's live bids' amounts over every open listing. O(live bids)."""
        live: dict[str, int] = {}
        for book in self._books.values():
            if book.status == "open":
                book.add_live_amounts(live)
        return live

    def live_auto_reserved(self) -> dict[str, int]:
        """Each standing order's live auto bids' amounts over every open listing. O(live bids)."""
        live: dict[str, int] = {}
        for book in self._books.values():
            if book.status == "open" and book.auto_orders:
                for i, _, amount in book.live_lenders():
                    order_id = book.auto_orders.get(i)
                    if order_id is not None:
                        live[order_id] = live.get(order_id, 0) + amount
        return live

    def check_invariants(self) -> None:
        """Assert books, deadline queue, ledger, exposure and standing orders are consistent.
        O(total bids + the orders' index)."""
        open_books = [b for b in self._books.values() if b.status == "open"]
        assert {d[2] for d in self._deadlines} == {b.terms.listing_id for b in open_books}
        assert len(self._deadlines) == len(open_books)
        for book in self._books.values():
            book.check_invariants()
        self.ledger.check_invariants(self.live_reserved())
        for book in open_books:
            assert self._exposure[book.terms.borrower_id] >= book.terms.amount
        self.orders.check_invariants(self.live_auto_reserved())

    # --- internals --------------------------------------------------------------------------

    def _add_listing(self, cmd: OpenListing) -> ListingBook:
        terms = cmd.terms
        book = self._books[terms.listing_id] = ListingBook(terms, cmd.seq, cmd.at)
        self._deadlines.add((terms.closes_at, cmd.seq, terms.listing_id))
        self._exposure[terms.borrower_id] = self._exposure.get(terms.borrower_id, 0) + terms.amount
        return book

    def _place(self, book: ListingBook, cmd: PlaceBid, order: StandingOrder | None) -> Outcome:
        """Any bid, manual or a standing order's (`order`): admission, the reservation, the
        outbids and, if it completes the book, the close. `place_bid`'s cost."""
        rejection = admit_bid(book, cmd, self.rules)
        if rejection is not None:
            return rejection
        amount, rate, at = cmd.amount, cmd.min_rate_bps, cmd.at
        account = self.ledger.accounts.get(cmd.lender_id)
        if account is None or account.available < amount:
            return admission.insufficient_funds(0 if account is None else account.available, amount)
        lender = account.account_id  # the book keeps the account's copy of the id, not the bid's
        listing_id, bid_id, seq = cmd.listing_id, cmd.bid_id, cmd.seq
        allocated, pushed_out = book.add(bid_id, lender, amount, rate, seq, at)
        order_id = None
        if order is not None:
            order_id = order.order_id
            book.mark_auto(book.bid_count - 1, order_id)
            self.orders.reserve(order, amount)
        events: list[Event] = [
            BidPlaced(listing_id, bid_id, lender, amount, rate, seq, at, allocated, order_id),
            self.ledger.reserve(account, amount, listing_id, bid_id, at),
        ]
        if pushed_out:
            release_outbid(book, pushed_out, seq, at, self.ledger, self.orders, events)
        if book.terms.close_when_funded and book.fully_covered:
            events.extend(self._close(book, at, "fully_funded"))
        return events

    def _close(self, book: ListingBook, at: int, reason: CloseReason) -> list[Event]:
        terms = book.terms
        self._deadlines.remove((terms.closes_at, book.opened_seq, terms.listing_id))
        if reason == "cancelled":
            events = cancel(book, at, self.ledger, self.orders)
        else:
            events = resolve(book, at, reason, self.ledger, self.orders)
        resolution = events[0]
        principal = resolution.principal if isinstance(resolution, ListingFunded) else 0
        self._exposure[terms.borrower_id] -= terms.amount - principal
        return events

    def _open_book(self, listing_id: str, at: int) -> ListingBook | r.Rejection:
        book = self._books.get(listing_id)
        if book is None:
            return r.Rejection(r.LISTING_NOT_FOUND, "no open listing with this id")
        return admission.check_open(book, at) or book
