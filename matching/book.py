"""One listing's book: its bids in priority order and the funding set.

Bids are stored column-wise in arrival order (a listing's arrival order is its `seq` order), so
a resting bid costs a few machine words rather than an object. Priority lives in one place,
`priority_key`: an int that sorts by rate, then by arrival. A bid that is outbid leaves the
funding set for good (bids are binding, and a new bid can only push dearer bids out, never pull
one back), so the set *is* the live book.

The set is kept by rate level, a price-level book: its distinct rates, ascending, and for each
the index of its latest bid; each bid links to the bid before it at its rate (`earlier`). A bid
joins the end of its level, and a bid leaves only from the end of the dearest level, so each
level is a stack and no link ever changes. Rates are whole bps under the listing's max rate, so
there are few levels however many bids: finding one is a bisection of a short list of small
ints, where a sorted container of every bid's key would cost O(log n) in Python code per insert.
"""

from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Final, Literal

from matching.commands import ListingTerms
from matching.events import CloseReason, Fill
from matching.rules import FULL_BPS, required_coverage

BidStatus = Literal["active", "outbid", "won", "lost"]
ListingStatus = Literal["open", "funded", "failed", "cancelled"]

_INDEX_BITS: Final = 32
_INDEX_MASK: Final = (1 << _INDEX_BITS) - 1
_NONE_PUSHED_OUT: Final[list[int]] = []  # shared, never mutated: most bids push nothing out
NO_BID: Final = _INDEX_MASK  # `earlier` of the first bid at its rate: no index is this large
#: The bids' number columns: unsigned 64-bit (every value is positive), by the typecode whose
#: append converts an int fastest. A signed array parses its argument; on CPython 3.11 "Q"
#: converts an int over 2^30 (a time in µs) through a byte array, "L" (C's unsigned long)
#: digit by digit, ~25 ns faster an append. "L" is 64 bits wide on 64-bit Linux and macOS;
#: where it is 32 (Windows, 32-bit builds) the columns are "Q", as before.
_U64: Final = "L" if array("L").itemsize == 8 else "Q"
#: Called as a function, not as a method: compiled, a call then skips looking the method up on
#: the array's type (~5 % of a bid spread over many listings, bench/engine.py).
_append: Final = array.append


def priority_key(rate_bps: int, index: int) -> int:
    """Lower rate first; equal rates by arrival. The only place priority is defined."""
    return (rate_bps << _INDEX_BITS) | index


class ListingBook:
    """The state of one listing.

    Placing a bid costs O(log R) to find its level among the set's R distinct rates (R is at most
    the max rate in bps), O(R) more when the level is new (a list insert), and O(1) per bid it
    pushes out; reads of one bid are O(1), summaries O(1), full listings and depth O(n).
    """

    __slots__ = (
        "terms", "opened_seq", "opened_at", "status", "close_reason", "closed_at",
        "bid_ids", "lenders", "amounts", "rates", "seqs", "placed_at", "earlier",
        "level_rates", "level_tails", "outbid",
        "total", "live_by_lender", "auto_orders", "auto_amount", "min_rate_bps", "rate_below_bps",
    )

    def __init__(self, terms: ListingTerms, opened_seq: int, opened_at: int) -> None:
        self.terms = terms
        self.opened_seq = opened_seq
        self.opened_at = opened_at
        self.status: ListingStatus = "open"
        self.close_reason: CloseReason | None = None
        self.closed_at: int | None = None
        self.bid_ids: list[str] = []
        self.lenders: list[str] = []
        self.amounts = array(_U64)
        self.rates = array(_U64)
        self.seqs = array(_U64)
        self.placed_at = array(_U64)
        #: Per bid, the index of the bid before it at its rate when it joined (or NO_BID).
        self.earlier = array("I")
        #: The funding set by rate level: its distinct rates ascending, each level's latest bid.
        self.level_rates: list[int] = []
        self.level_tails = array("I")
        #: Indices in the order they were outbid: each is ahead (in priority) of the one before.
        self.outbid = array("I")
        self.total = 0
        #: Each lender's live bids' amounts, kept only when the listing caps a lender's share.
        self.live_by_lender: dict[str, int] | None = (
            {} if terms.policy.max_lender_share_bps < FULL_BPS else None
        )
        #: Bid index → standing order id, for auto bids only (None until the first one), and
        #: their total: a manual bid never touches either.
        self.auto_orders: dict[int, str] | None = None
        self.auto_amount = 0
        #: A new bid's rate range, `min_rate_bps <= rate < rate_below_bps`: from the grade floor
        #: (at least 1) to the listing's max rate, and below the marginal rate once the book is
        #: covered. Kept up to date here so admission's common case is two comparisons.
        self.min_rate_bps = max(1, terms.policy.min_rate_bps)
        self.rate_below_bps = terms.max_rate_bps + 1

    # --- state -------------------------------------------------------------------------------

    @property
    def bid_count(self) -> int:
        return len(self.seqs)

    @property
    def covered(self) -> int:
        """Money the funding set covers now: min(sum of the set, amount)."""
        return min(self.total, self.terms.amount)

    @property
    def fully_covered(self) -> bool:
        return self.total >= self.terms.amount

    @property
    def required(self) -> int:
        """The least coverage that lets the loan go ahead (min_funding_bps of the amount)."""
        return required_coverage(self.terms.amount, self.terms.min_funding_bps)

    @property
    def meets_min_funding(self) -> bool:
        """The loan may go ahead now: something covered, and at least `required`."""
        covered = self.covered
        return covered > 0 and covered >= self.required

    @property
    def marginal_rate_bps(self) -> int | None:
        """Rate of the last bid in the funding set, None while the book is empty."""
        return self.level_rates[-1] if self.level_rates else None

    @property
    def marginal_index(self) -> int | None:
        """Index of the last bid in the funding set, None while the book is empty."""
        return self.level_tails[-1] if self.level_tails else None

    def add(
        self, bid_id: str, lender_id: str, amount: int, rate_bps: int, seq: int, at: int
    ) -> tuple[int, list[int]]:
        """Insert a bid; return its allocated amount and the indices it pushed out, in order.

        O(log R), O(R) for a new level, plus O(1) per bid pushed out. The caller has checked
        admissibility. This is the hot path, so the level search and the pops are inline.
        """
        index = len(self.seqs)
        self.bid_ids.append(bid_id)
        self.lenders.append(lender_id)
        _append(self.amounts, amount)
        _append(self.rates, rate_bps)
        _append(self.seqs, seq)
        _append(self.placed_at, at)
        level_rates, tails = self.level_rates, self.level_tails
        level = bisect_left(level_rates, rate_bps)
        if level < len(level_rates) and level_rates[level] == rate_bps:
            before = tails[level]
            tails[level] = index
        else:
            before = NO_BID
            level_rates.insert(level, rate_bps)
            tails.insert(level, index)
        _append(self.earlier, before)
        if self.live_by_lender is not None:
            self.live_by_lender[lender_id] = self.live_by_lender.get(lender_id, 0) + amount
        total = self.total + amount
        target = self.terms.amount
        if total < target:
            self.total = total
            return amount, _NONE_PUSHED_OUT
        amounts, earlier = self.amounts, self.earlier
        pushed_out: list[int] = []
        last = tails[-1]
        last_amount = amounts[last]
        while total - last_amount >= target:
            before = earlier[last]
            if before == NO_BID:
                level_rates.pop()
                tails.pop()
            else:
                tails[-1] = before
            total -= last_amount
            pushed_out.append(last)
            last = tails[-1]
            last_amount = amounts[last]
        self.total = total
        self.rate_below_bps = level_rates[-1]
        if pushed_out:
            self.outbid.extend(pushed_out)
            if self.live_by_lender is not None:
                for i in pushed_out:
                    self.live_by_lender[self.lenders[i]] -= amounts[i]
        if index != last:
            return amount, pushed_out
        return target - (total - amount), pushed_out

    def restore(
        self, bid_ids: Sequence[str], lenders: Sequence[str], amounts: Sequence[int],
        rates: Sequence[int], seqs: Sequence[int], placed_at: Sequence[int],
    ) -> bool:
        """Append stored bids in arrival order: the same book as `add` for each in turn.

        Recovery's fast path: bids that do not cover the listing even together pushed nothing
        out when they came, so they go in as columns, each linked to the latest bid at its rate
        (a dict of the levels, sorted once), with no call per bid. Bids that do are added one by
        one (the outbids follow the rules). Returns whether they took the fast path.
        """
        if not len(bid_ids) == len(lenders) == len(amounts) == len(rates) == len(seqs) == len(
            placed_at
        ):
            raise ValueError("the stored bids' columns differ in length")
        added = sum(amounts)
        if self.total + added >= self.terms.amount:
            for bid in zip(bid_ids, lenders, amounts, rates, seqs, placed_at, strict=True):
                self.add(*bid)
            return False
        first = len(self.seqs)
        self.bid_ids.extend(bid_ids)
        self.lenders.extend(lenders)
        self.amounts.extend(amounts)
        self.rates.extend(rates)
        self.seqs.extend(seqs)
        self.placed_at.extend(placed_at)
        tails = dict(zip(self.level_rates, self.level_tails, strict=True))
        earlier = self.earlier
        for index, rate in enumerate(rates, first):
            earlier.append(tails.get(rate, NO_BID))
            tails[rate] = index
        self.level_rates = sorted(tails)
        self.level_tails = array("I", [tails[rate] for rate in self.level_rates])
        self.total += added
        if self.live_by_lender is not None:
            live = self.live_by_lender
            for lender, amount in zip(lenders, amounts, strict=True):
                live[lender] = live.get(lender, 0) + amount
        return True

    def mark_auto(self, index: int, order_id: str) -> None:
        """The bid at `index` was placed by a standing order. O(1)."""
        if self.auto_orders is None:
            self.auto_orders = {}
        self.auto_orders[index] = order_id
        self.auto_amount += self.amounts[index]

    # --- one bid ------------------------------------------------------------------------------

    def standing_order_of(self, index: int) -> str | None:
        """The order that placed the bid, None for a manual bid. O(1)."""
        return None if self.auto_orders is None else self.auto_orders.get(index)

    def key_of(self, index: int) -> int:
        return priority_key(self.rates[index], index)

    def is_in_funding_set(self, index: int) -> bool:
        """O(1): outbid keys all sort after the set, so membership is a comparison."""
        last = self.marginal_index
        return last is not None and self.key_of(index) <= self.key_of(last)

    def allocated(self, index: int) -> int:
        """How much of the bid is in the funding set now; only the marginal bid is partial.
        A failed or cancelled listing allocates nothing: its bids were all released."""
        if self.status in ("failed", "cancelled") or not self.is_in_funding_set(index):
            return 0
        amount = self.amounts[index]
        if index != self.marginal_index:
            return amount
        return min(amount, self.terms.amount - (self.total - amount))

    def bid_status(self, index: int) -> BidStatus:
        if not self.is_in_funding_set(index):
            return "outbid"
        if self.status == "open":
            return "active"
        return "won" if self.status == "funded" else "lost"

    def index_of_seq(self, seq: int) -> int | None:
        """O(log n): arrival order is seq order, so the seq column is sorted."""
        lo, hi = 0, len(self.seqs)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.seqs[mid] < seq:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self.seqs) and self.seqs[lo] == seq else None

    # --- resolution inputs ----------------------------------------------------------------------

    def levels(self) -> Iterator[list[int]]:
        """Each rate level of the funding set, cheapest first: its bids' indices in arrival
        order. O(n) in all."""
        earlier = self.earlier
        for tail in self.level_tails:
            level = [tail]
            while (tail := earlier[tail]) != NO_BID:
                level.append(tail)
            level.reverse()
            yield level

    def in_funding_set(self) -> list[int]:
        """The funding set's bid indices, best first. O(n)."""
        return [index for level in self.levels() for index in level]

    def priority_order(self) -> list[int]:
        """Every bid's index, best first: the funding set, then the outbid. O(n)."""
        return self.in_funding_set() + self.outbid[::-1].tolist()

    def live_lenders(self) -> list[tuple[int, str, int]]:
        """(index, lender, amount) of each bid in the funding set, best first. O(n)."""
        return [(i, self.lenders[i], self.amounts[i]) for i in self.in_funding_set()]

    def add_live_amounts(self, totals: dict[str, int]) -> None:
        """Add each lender's live bids' amounts on this listing to `totals`. O(n)."""
        lenders, amounts = self.lenders, self.amounts
        for i in self.in_funding_set():
            lender = lenders[i]
            totals[lender] = totals.get(lender, 0) + amounts[i]

    def live_amount_of(self, lender_id: str) -> int:
        """The lender's live bids' amounts on this listing. O(1); only for a listing that caps a
        lender's share (the only ones that keep the totals)."""
        assert self.live_by_lender is not None
        return self.live_by_lender.get(lender_id, 0)

    def fills(self, rate_bps: int | None = None) -> list[Fill]:
        """One fill per bid in the set, the marginal bid partly: each at its own rate, or all at
        `rate_bps` (a uniform price), built once either way. O(n)."""
        bid_ids, lenders, seqs, amounts = self.bid_ids, self.lenders, self.seqs, self.amounts
        indices = self.in_funding_set()
        if rate_bps is None:
            rates = self.rates
            fills = [Fill(bid_ids[i], lenders[i], seqs[i], amounts[i], rates[i]) for i in indices]
        else:
            fills = [Fill(bid_ids[i], lenders[i], seqs[i], amounts[i], rate_bps) for i in indices]
        if fills and self.total > self.terms.amount:
            last = fills[-1]
            part = last.amount - (self.total - self.terms.amount)
            fills[-1] = Fill(last.bid_id, last.lender_id, last.seq, part, last.rate_bps)
        return fills

    def first_excluded_rate(self) -> int | None:
        """Rate of the first unit of money left out of the set, None if nothing is left out."""
        if self.total > self.terms.amount:
            return self.marginal_rate_bps
        return self.rates[self.outbid[-1]] if self.outbid else None

    def check_invariants(self) -> None:
        """Assert the book's internal consistency. O(n); for tests after every command."""
        n = len(self.seqs)
        assert len(self.bid_ids) == len(self.lenders) == len(self.amounts) == n
        assert len(self.rates) == len(self.placed_at) == n
        assert list(self.seqs) == sorted(set(self.seqs)), "seqs must be strictly increasing"
        assert len(self.earlier) == n
        assert all(b == NO_BID or b < i for i, b in enumerate(self.earlier)), "links go back"
        levels = list(self.levels())
        assert len(self.level_rates) == len(self.level_tails) == len(levels)
        assert self.level_rates == sorted(set(self.level_rates)), "one level per rate, ascending"
        for rate, level in zip(self.level_rates, levels, strict=True):
            assert all(self.rates[i] == rate for i in level), "a level holds bids of its rate"
        in_set = [i for level in levels for i in level]
        assert sorted(in_set + self.outbid.tolist()) == list(range(n)), "in the set or outbid"
        keys = [self.key_of(i) for i in in_set]
        assert keys == sorted(keys), "the set in priority order"
        outbid = [self.key_of(i) for i in self.outbid]
        assert outbid == sorted(outbid, reverse=True), "outbid in reverse priority"
        if keys and outbid:
            assert keys[-1] < outbid[-1], "the set is a prefix of the book"
        assert self.total == sum(self.amounts[i] for i in in_set)
        if in_set:
            last_amount = self.amounts[in_set[-1]]
            assert self.total - last_amount < self.terms.amount, "the set is the shortest prefix"
        if self.outbid:
            assert self.total >= self.terms.amount, "bids are only outbid once fully covered"
        covered = self.total >= self.terms.amount
        assert self.rate_below_bps == (
            self.marginal_rate_bps if covered else self.terms.max_rate_bps + 1
        )
        assert self.min_rate_bps == max(1, self.terms.policy.min_rate_bps)
        for i in range(n):
            assert 0 < self.amounts[i] <= self.terms.amount
            assert 0 < self.rates[i] <= self.terms.max_rate_bps
        if self.auto_orders is not None:
            assert self.auto_orders and all(0 <= i < n for i in self.auto_orders)
            assert len(set(self.auto_orders.values())) == len(self.auto_orders), "once per order"
            assert self.auto_amount == sum(self.amounts[i] for i in self.auto_orders)
        else:
            assert self.auto_amount == 0
        if self.live_by_lender is not None:
            live: dict[str, int] = {}
            for _, lender, amount in self.live_lenders():
                live[lender] = live.get(lender, 0) + amount
            assert {k: v for k, v in self.live_by_lender.items() if v} == live
