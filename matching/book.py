"""One listing's book: its bids in priority order and the funding set.

Bids are stored column-wise in arrival order (a listing's arrival order is its `seq` order), so
a resting bid costs a few machine words rather than an object. Priority lives in one place,
`priority_key`: an int that sorts by rate, then by arrival. The funding set is kept as a
`SortedList` of those keys; a bid that is outbid leaves it for good (bids are binding, and a
new bid can only push dearer bids out, never pull one back), so the set *is* the live book.
"""

from array import array
from collections.abc import Sequence
from typing import Final, Literal

from sortedcontainers import SortedList

from matching.commands import ListingTerms
from matching.events import CloseReason, Fill
from matching.rules import FULL_BPS, required_coverage

BidStatus = Literal["active", "outbid", "won", "lost"]
ListingStatus = Literal["open", "funded", "failed", "cancelled"]

_INDEX_BITS: Final = 32
_INDEX_MASK: Final = (1 << _INDEX_BITS) - 1
_NONE_PUSHED_OUT: Final[list[int]] = []  # shared, never mutated: most bids push nothing out


def priority_key(rate_bps: int, index: int) -> int:
    """Lower rate first; equal rates by arrival. The only place priority is defined."""
    return (rate_bps << _INDEX_BITS) | index


class ListingBook:
    """The state of one listing.

    Placing a bid costs O(log n) for the insert plus O(log n) per bid it pushes out; reads of
    one bid are O(1), summaries O(1), full listings and depth O(n).
    """

    __slots__ = (
        "terms", "opened_seq", "opened_at", "status", "close_reason", "closed_at",
        "bid_ids", "lenders", "amounts", "rates", "seqs", "placed_at", "funding", "outbid",
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
        # Unsigned 64-bit: every column is positive, and an unsigned array's append converts
        # the int directly, about twice as fast as a signed one's (which parses its argument).
        self.amounts = array("Q")
        self.rates = array("Q")
        self.seqs = array("Q")
        self.placed_at = array("Q")
        self.funding: SortedList[int] = SortedList()
        # Keys in the order they were outbid: each is ahead (in priority) of the one before.
        self.outbid: list[int] = []
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
        return self.funding[-1] >> _INDEX_BITS if self.funding else None

    def add(
        self, bid_id: str, lender_id: str, amount: int, rate_bps: int, seq: int, at: int
    ) -> tuple[int, list[int]]:
        """Insert a bid; return its allocated amount and the indices it pushed out, in order.

        O(log n) plus O(log n) per bid pushed out. The caller has checked admissibility. This is
        the hot path, so it reads the set's last key from the SortedList's last sublist (O(1))
        rather than through `funding[-1]`, and inlines `priority_key`.
        """
        index = len(self.seqs)
        self.bid_ids.append(bid_id)
        self.lenders.append(lender_id)
        self.amounts.append(amount)
        self.rates.append(rate_bps)
        self.seqs.append(seq)
        self.placed_at.append(at)
        key = (rate_bps << _INDEX_BITS) | index
        funding = self.funding
        funding.add(key)
        if self.live_by_lender is not None:
            self.live_by_lender[lender_id] = self.live_by_lender.get(lender_id, 0) + amount
        total = self.total + amount
        target = self.terms.amount
        if total < target:
            self.total = total
            return amount, _NONE_PUSHED_OUT
        amounts = self.amounts
        pushed_out: list[int] = []
        last = funding._lists[-1][-1]  # type: ignore[attr-defined]
        last_amount = amounts[last & _INDEX_MASK]
        while total - last_amount >= target:
            funding.pop()
            total -= last_amount
            self.outbid.append(last)
            pushed_out.append(last & _INDEX_MASK)
            last = funding._lists[-1][-1]  # type: ignore[attr-defined]
            last_amount = amounts[last & _INDEX_MASK]
        self.total = total
        self.rate_below_bps = last >> _INDEX_BITS
        if self.live_by_lender is not None:
            for i in pushed_out:
                self.live_by_lender[self.lenders[i]] -= amounts[i]
        if key != last:
            return amount, pushed_out
        return target - (total - amount), pushed_out

    def restore(
        self, bid_ids: Sequence[str], lenders: Sequence[str], amounts: Sequence[int],
        rates: Sequence[int], seqs: Sequence[int], placed_at: Sequence[int],
    ) -> None:
        """Append stored bids in arrival order: the same book as `add` for each in turn.

        Recovery's fast path: bids that do not cover the listing even together pushed nothing
        out when they came, so they go in as columns and one sorted insert of their keys, with
        no call per bid. Bids that do are added one by one (the outbids follow the rules).
        """
        if not len(bid_ids) == len(lenders) == len(amounts) == len(rates) == len(seqs) == len(
            placed_at
        ):
            raise ValueError("the stored bids' columns differ in length")
        added = sum(amounts)
        if self.total + added >= self.terms.amount:
            for bid in zip(bid_ids, lenders, amounts, rates, seqs, placed_at, strict=True):
                self.add(*bid)
            return
        first = len(self.seqs)
        self.bid_ids.extend(bid_ids)
        self.lenders.extend(lenders)
        self.amounts.extend(amounts)
        self.rates.extend(rates)
        self.seqs.extend(seqs)
        self.placed_at.extend(placed_at)
        self.funding.update([(rate << _INDEX_BITS) | i for i, rate in enumerate(rates, first)])
        self.total += added
        if self.live_by_lender is not None:
            live = self.live_by_lender
            for lender, amount in zip(lenders, amounts, strict=True):
                live[lender] = live.get(lender, 0) + amount

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
        return bool(self.funding) and self.key_of(index) <= self.funding[-1]

    def allocated(self, index: int) -> int:
        """How much of the bid is in the funding set now; only the marginal bid is partial.
        A failed or cancelled listing allocates nothing: its bids were all released."""
        if self.status in ("failed", "cancelled") or not self.is_in_funding_set(index):
            return 0
        amount = self.amounts[index]
        if self.key_of(index) != self.funding[-1]:
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

    def priority_order(self) -> list[int]:
        """Every bid's index, best first: the funding set, then the outbid. O(n)."""
        in_set = [key & _INDEX_MASK for key in self.funding]
        return in_set + [key & _INDEX_MASK for key in reversed(self.outbid)]

    def live_lenders(self) -> list[tuple[int, str, int]]:
        """(index, lender, amount) of each bid in the funding set, best first. O(n)."""
        return [
            (i, self.lenders[i], self.amounts[i]) for i in (k & _INDEX_MASK for k in self.funding)
        ]

    def add_live_amounts(self, totals: dict[str, int]) -> None:
        """Add each lender's live bids' amounts on this listing to `totals`. O(n)."""
        lenders, amounts = self.lenders, self.amounts
        for key in self.funding:
            i = key & _INDEX_MASK
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
        indices = [key & _INDEX_MASK for key in self.funding]
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
        return self.outbid[-1] >> _INDEX_BITS if self.outbid else None

    def check_invariants(self) -> None:
        """Assert the book's internal consistency. O(n); for tests after every command."""
        n = len(self.seqs)
        assert len(self.bid_ids) == len(self.lenders) == len(self.amounts) == n
        assert len(self.rates) == len(self.placed_at) == n
        assert list(self.seqs) == sorted(set(self.seqs)), "seqs must be strictly increasing"
        funding = list(self.funding)
        assert len(funding) + len(self.outbid) == n, "every bid is in the set or outbid"
        assert sorted(funding + self.outbid) == sorted(self.key_of(i) for i in range(n))
        assert self.outbid == sorted(self.outbid, reverse=True), "outbid in reverse priority"
        if funding and self.outbid:
            assert funding[-1] < self.outbid[-1], "the set is a prefix of the book"
        assert self.total == sum(self.amounts[k & _INDEX_MASK] for k in funding)
        if funding:
            last_amount = self.amounts[funding[-1] & _INDEX_MASK]
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
