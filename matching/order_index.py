"""The standing-order index: the orders that may bid on a listing, in queue order, with no scan.

An order matches a listing of grade g, term t and rate cap R when g is one of its grades,
`term_min <= t <= term_max` and its `min_rate_bps <= R`. The index answers "the matching
orders, smallest queue ticket first" lazily, so opening a listing pays for the orders it looks
at, never for the ones that cannot match:

- Terms: per grade, a segment tree over the terms 1..T (T a power of two ≥ the longest term).
  An order's term range is split into its canonical nodes (at most 2·log2 T, disjoint); a
  listing's term lies under exactly log2 T + 1 nodes (its leaf and the leaf's ancestors), and
  a matching order sits in exactly one of them.
- Rates: in each (grade, term node) the orders are kept by rate level (a `SortedList` of
  tickets per `min_rate_bps`), under a tournament tree over the rate levels 0..V-1 whose nodes
  hold the smallest ticket beneath them. The levels ≤ R are covered by at most log2 V + 1
  tree nodes, and the smallest tickets under them come out of a heap: each yielded order costs
  one descent of log2 V steps, whatever the number of levels or orders.

So a query costs O(log T · log V) to start plus O(log V · log h) per order it yields (h, the
heap, holds at most (log T + 1)(log V + 1) + log V entries). Adding, removing or moving an
order to the back costs O(g · log T · (log V + log n)) for g grades. Tickets must be unique;
the index must not change while a query is being read (the caller defers its changes).

Why not simpler: merging the rate levels ≤ R of the log T + 1 nodes (a `SortedDict` of levels
per node, `heapq.merge` over them) is lighter to update but costs O(levels) to start, up to
every rate under the cap, however few orders bid. Memory: each (grade, term node) that holds an
order keeps a tree of 2·V slots (64 KiB for the default cap; at most 7 · (2T - 1) of them).
Measured in bench/orders.py.
"""

import functools
import heapq
from collections.abc import Iterator
from typing import Final

from sortedcontainers import SortedList

from matching.rules import Grade

_EMPTY: Final = 1 << 63  # larger than any ticket: "no order beneath this node"


class _RateTree:
    """The orders of one (grade, term node): tickets by rate level, and per tournament-tree
    node (heap numbering, root 1, level r at leaf `width + r`) the smallest ticket beneath.
    The tree is a flat list (2 · width slots): cheaper to walk than a dict, and its size is
    fixed by the rate cap, not by the orders."""

    __slots__ = ("levels", "smallest")

    def __init__(self, width: int) -> None:
        self.levels: dict[int, SortedList[int]] = {}
        self.smallest: list[int] = [_EMPTY] * (2 * width)

    def add(self, rate: int, ticket: int, width: int) -> None:
        """O(log n + log V)."""
        level = self.levels.get(rate)
        if level is None:
            level = self.levels[rate] = SortedList()
        level.add(ticket)
        node, smallest = width + rate, self.smallest
        while node and ticket < smallest[node]:
            smallest[node] = ticket
            node >>= 1

    def remove(self, rate: int, ticket: int, width: int) -> None:
        """O(log n + log V): only the nodes whose smallest ticket this was are recomputed."""
        level = self.levels[rate]
        level.remove(ticket)
        if not level:
            del self.levels[rate]
        self._recompute(width + rate, ticket, level[0] if level else _EMPTY)

    def move_to_back(self, rate: int, old: int, new: int, width: int) -> None:
        """`old` becomes `new`, larger than every ticket: one walk up instead of two."""
        level = self.levels[rate]
        if level[0] == old:  # the usual case: the order that bid was first at its rate
            del level[0]
        else:
            level.remove(old)
        level.add(new)
        self._recompute(width + rate, old, level[0])

    def _recompute(self, leaf: int, gone: int, leaf_smallest: int) -> None:
        """The leaf's smallest ticket is now `leaf_smallest`; fix the ancestors whose smallest
        was `gone`. O(log V)."""
        smallest = self.smallest
        if smallest[leaf] != gone:
            return
        smallest[leaf] = leaf_smallest
        node = leaf >> 1
        while node and smallest[node] == gone:
            left, right = smallest[2 * node], smallest[2 * node + 1]
            smallest[node] = left if left < right else right
            node >>= 1


class OrderIndex:
    """Tickets of the orders that may bid, by grade, term range and minimum rate."""

    __slots__ = ("_terms", "_rates", "_trees")

    def __init__(self, max_term: int, max_rate: int) -> None:
        self._terms = 1 << (max_term - 1).bit_length()  # leaves for the terms 1..max_term
        self._rates = 1 << max_rate.bit_length()  # leaves for the rates 0..max_rate
        self._trees: dict[tuple[Grade, int], _RateTree] = {}

    def add(
        self, ticket: int, grades: tuple[Grade, ...], term_min: int, term_max: int, rate: int
    ) -> None:
        for node in _cover(self._terms + term_min - 1, self._terms + term_max):
            for grade in grades:
                tree = self._trees.get((grade, node))
                if tree is None:
                    tree = self._trees[grade, node] = _RateTree(self._rates)
                tree.add(rate, ticket, self._rates)

    def remove(
        self, ticket: int, grades: tuple[Grade, ...], term_min: int, term_max: int, rate: int
    ) -> None:
        for node in _cover(self._terms + term_min - 1, self._terms + term_max):
            for grade in grades:
                tree = self._trees[grade, node]
                tree.remove(rate, ticket, self._rates)
                if not tree.levels:
                    del self._trees[grade, node]

    def move_to_back(
        self, old: int, new: int, grades: tuple[Grade, ...], term_min: int, term_max: int,
        rate: int,
    ) -> None:
        """An order's ticket `old` becomes `new`, larger than every ticket held."""
        trees, width = self._trees, self._rates
        for node in _cover(self._terms + term_min - 1, self._terms + term_max):
            for grade in grades:
                trees[grade, node].move_to_back(rate, old, new, width)

    def tickets(self, grade: Grade, term: int, max_rate: int) -> Iterator[int]:
        """The tickets of the orders matching a listing, smallest first, lazily."""
        width = self._rates
        heap: list[tuple[int, int, int, int, _RateTree]] = []
        node = self._terms + term - 1
        while node:
            tree = self._trees.get((grade, node))
            if tree is not None:
                for top in _cover(width, width + min(max_rate, width - 1) + 1):
                    smallest = tree.smallest[top]
                    if smallest != _EMPTY:  # the node number breaks ties before the tree
                        heap.append((smallest, top, 0, node, tree))
            node >>= 1
        heapq.heapify(heap)
        while heap:
            ticket, top, position, term_node, tree = heap[0]
            if top >= width:  # a rate level: yield its tickets in order
                yield ticket
                level = tree.levels[top - width]
                position += 1
                if position < len(level):
                    heapq.heapreplace(heap, (level[position], top, position, term_node, tree))
                else:
                    heapq.heappop(heap)
                continue
            heapq.heappop(heap)
            for child in (2 * top, 2 * top + 1):
                smallest = tree.smallest[child]
                if smallest != _EMPTY:
                    heapq.heappush(heap, (smallest, child, 0, term_node, tree))

    # --- checks -----------------------------------------------------------------------------

    def entries(self) -> set[tuple[Grade, int, int, int]]:
        """Every (grade, term node, rate, ticket) held. O(entries); for tests."""
        return {
            (grade, node, rate, ticket)
            for (grade, node), tree in self._trees.items()
            for rate, level in tree.levels.items()
            for ticket in level
        }

    def expected_entries(
        self, ticket: int, grades: tuple[Grade, ...], term_min: int, term_max: int, rate: int
    ) -> set[tuple[Grade, int, int, int]]:
        """What `add` puts in for one order."""
        nodes = _cover(self._terms + term_min - 1, self._terms + term_max)
        return {(grade, node, rate, ticket) for node in nodes for grade in grades}

    def check_invariants(self) -> None:
        """Every tree non-empty and every node's smallest ticket right: the nodes above the
        levels hold their levels' smallest, and no other node holds anything.
        O(entries · log V + trees · V), the last part counted in C (`list.count`)."""
        for tree in self._trees.values():
            assert tree.levels and all(tree.levels.values())
            want: dict[int, int] = {}
            for rate, level in tree.levels.items():
                node = self._rates + rate
                while node:
                    want[node] = min(want.get(node, _EMPTY), level[0])
                    node >>= 1
            assert all(tree.smallest[node] == ticket for node, ticket in want.items())
            assert len(tree.smallest) - tree.smallest.count(_EMPTY) == len(want)


@functools.cache
def _cover(low: int, high: int) -> tuple[int, ...]:
    """The canonical segment-tree nodes covering the leaves [low, high) (heap numbering):
    disjoint, at most 2·log2 of the width. O(log width)."""
    nodes: list[int] = []
    while low < high:
        if low & 1:
            nodes.append(low)
            low += 1
        if high & 1:
            high -= 1
            nodes.append(high)
        low >>= 1
        high >>= 1
    return tuple(nodes)
