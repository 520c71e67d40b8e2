"""The engine: every open listing's book and the one deadline queue, driven by commands.

Deterministic and synchronous: the same commands give the same events. A command returns either
the events it caused or a `Rejection` (nothing changed). An exception here means a bug.
"""

from sortedcontainers import SortedList

from matching import rejections as r
from matching.book import ListingBook
from matching.commands import (
    AcceptEarly,
    AdvanceClock,
    CancelListing,
    Command,
    ListingTerms,
    OpenListing,
    PlaceBid,
)
from matching.events import (
    BidOutbid,
    BidPlaced,
    CloseReason,
    Event,
    ListingCancelled,
    ListingOpened,
    Resolution,
)
from matching.resolution import resolve
from matching.rules import FULL_BPS, GRADES, PRICINGS, MarketRules, required_coverage
from matching.views import BidView, DepthLevel, ListingSummary, bid_view, depth, summary

Outcome = list[Event] | r.Rejection


class Engine:
    """Holds the books. Closed books stay (read-only) until the shell calls `release`."""

    def __init__(self, rules: MarketRules) -> None:
        self.rules = rules
        self._books: dict[str, ListingBook] = {}
        # (closes_at, opened_seq, listing_id) of every open listing: one ordered queue, no timers.
        self._deadlines: SortedList[tuple[int, int, str]] = SortedList()
        self._lenders: dict[str, str] = {}

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
        return self.advance_clock(command)

    # --- commands ---------------------------------------------------------------------------

    def open_listing(self, cmd: OpenListing) -> Outcome:
        """O(log L) for the deadline queue."""
        terms = cmd.terms
        rejection = self._check_terms(terms, cmd.at)
        if rejection is not None:
            return rejection
        self._books[terms.listing_id] = ListingBook(terms, cmd.seq, cmd.at)
        self._deadlines.add((terms.closes_at, cmd.seq, terms.listing_id))
        return [ListingOpened(terms, cmd.seq, cmd.at)]

    def place_bid(self, cmd: PlaceBid) -> Outcome:
        """O(log n) plus O(log n) per bid pushed out (plus the resolution if it closes)."""
        book = self._books.get(cmd.listing_id)
        if book is None:
            return r.Rejection(r.LISTING_NOT_FOUND, "no open listing with this id")
        rejection = self._check_bid(book, cmd)
        if rejection is not None:
            return rejection
        lender = self._lenders.setdefault(cmd.lender_id, cmd.lender_id)
        listing_id, seq, at = cmd.listing_id, cmd.seq, cmd.at
        allocated, pushed_out = book.add(
            cmd.bid_id, lender, cmd.amount, cmd.min_rate_bps, seq, at
        )
        events: list[Event] = [
            BidPlaced(
                listing_id, cmd.bid_id, lender, cmd.amount, cmd.min_rate_bps, seq, at, allocated
            )
        ]
        for i in pushed_out:
            events.append(BidOutbid(
                listing_id, book.bid_ids[i], book.lenders[i], book.amounts[i], book.rates[i],
                book.seqs[i], at, seq,
            ))
        if book.terms.close_when_funded and book.fully_covered:
            events.append(self._close(book, at, "fully_funded"))
        return events

    def accept_early(self, cmd: AcceptEarly) -> Outcome:
        book = self._open_book(cmd.listing_id, cmd.at)
        if isinstance(book, r.Rejection):
            return book
        required = required_coverage(book.terms.amount, book.terms.min_funding_bps)
        if book.covered < required or book.covered == 0:
            return r.Rejection(
                r.BELOW_MIN_FUNDING,
                f"coverage {book.covered} is below the {required} needed to accept",
            )
        return [self._close(book, cmd.at, "accepted")]

    def cancel_listing(self, cmd: CancelListing) -> Outcome:
        book = self._open_book(cmd.listing_id, cmd.at)
        if isinstance(book, r.Rejection):
            return book
        return [self._close(book, cmd.at, "cancelled")]

    def advance_clock(self, cmd: AdvanceClock) -> Outcome:
        """Resolve every listing due at or before `cmd.at`, in deadline order. O(k log L)."""
        events: list[Event] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= cmd.at:
            closes_at, _, listing_id = deadlines[0]
            events.append(self._close(self._books[listing_id], closes_at, "deadline"))
        return events

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

    def check_invariants(self) -> None:
        """Assert every book and the deadline queue are consistent. O(total bids)."""
        open_books = {b.terms.listing_id for b in self._books.values() if b.status == "open"}
        assert {d[2] for d in self._deadlines} == open_books
        assert len(self._deadlines) == len(open_books)
        for book in self._books.values():
            book.check_invariants()

    # --- internals --------------------------------------------------------------------------

    def _close(self, book: ListingBook, at: int, reason: CloseReason) -> Resolution:
        terms = book.terms
        self._deadlines.remove((terms.closes_at, book.opened_seq, terms.listing_id))
        if reason != "cancelled":
            return resolve(book, at, reason)
        book.status, book.close_reason, book.closed_at = "cancelled", reason, at
        return ListingCancelled(terms.listing_id, at, book.covered)

    def _open_book(self, listing_id: str, at: int) -> ListingBook | r.Rejection:
        book = self._books.get(listing_id)
        if book is None:
            return r.Rejection(r.LISTING_NOT_FOUND, "no open listing with this id")
        if book.status != "open" or at >= book.terms.closes_at:
            return r.Rejection(r.LISTING_NOT_OPEN, f"listing is {_shown_status(book, at)}")
        return book

    def _check_bid(self, book: ListingBook, cmd: PlaceBid) -> r.Rejection | None:
        terms = book.terms
        rate = cmd.min_rate_bps
        if book.status != "open" or cmd.at >= terms.closes_at:
            return r.Rejection(r.LISTING_NOT_OPEN, f"listing is {_shown_status(book, cmd.at)}")
        if cmd.amount < self.rules.min_bid_amount:
            return r.Rejection(
                r.BID_BELOW_MINIMUM, f"a bid is at least {self.rules.min_bid_amount}", "amount"
            )
        if cmd.amount > terms.amount:
            return r.Rejection(
                r.BID_ABOVE_LISTING_AMOUNT, f"a bid is at most {terms.amount}", "amount"
            )
        if rate < 1:
            return r.Rejection(r.RATE_OUT_OF_RANGE, "a rate is at least 1 bp", "min_rate_bps")
        if rate > terms.max_rate_bps:
            return r.Rejection(
                r.RATE_ABOVE_MAX, f"the listing accepts at most {terms.max_rate_bps} bps",
                "min_rate_bps",
            )
        if book.total >= terms.amount:
            marginal = book.marginal_rate_bps
            if marginal is not None and rate >= marginal:
                return r.Rejection(
                    r.BID_NOT_COMPETITIVE,
                    f"the listing is fully covered; bid below {marginal} bps",
                    "min_rate_bps", marginal,
                )
        return None

    def _check_terms(self, terms: ListingTerms, at: int) -> r.Rejection | None:
        rules = self.rules
        checks = (
            (terms.listing_id in self._books, r.LISTING_EXISTS, "listing_id", "id already used"),
            (not rules.min_listing_amount <= terms.amount <= rules.max_listing_amount,
             r.AMOUNT_OUT_OF_RANGE, "amount",
             f"amount is {rules.min_listing_amount} to {rules.max_listing_amount}"),
            (not 1 <= terms.term_months <= rules.max_term_months, r.TERM_OUT_OF_RANGE,
             "term_months", f"term is 1 to {rules.max_term_months} months"),
            (not 1 <= terms.max_rate_bps <= rules.legal_rate_cap_bps, r.RATE_OUT_OF_RANGE,
             "max_rate_bps", f"max rate is 1 to {rules.legal_rate_cap_bps} bps"),
            (not rules.min_window_us <= terms.closes_at - at <= rules.max_window_us,
             r.WINDOW_OUT_OF_RANGE, "closes_at",
             f"the window is {rules.min_window_us // 10**6} s to {rules.max_window_us // 10**6} s"),
            (not 1 <= terms.min_funding_bps <= FULL_BPS, r.MIN_FUNDING_OUT_OF_RANGE,
             "min_funding_bps", "min funding is 1 to 10000 bps"),
            (terms.grade not in GRADES, r.UNKNOWN_GRADE, "grade", f"grade is one of {GRADES}"),
            (terms.pricing not in PRICINGS, r.UNKNOWN_PRICING, "pricing",
             f"pricing is one of {PRICINGS}"),
        )
        for failed, code, field, detail in checks:
            if failed:
                return r.Rejection(code, detail, field)
        return None


def _shown_status(book: ListingBook, at: int) -> str:
    return "closed" if book.status == "open" and at >= book.terms.closes_at else book.status
