"""The standing-order index against a plain list: after any adds and removes, a query yields
exactly the matching tickets, smallest first."""

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from matching.order_index import OrderIndex
from matching.rules import GRADES, Grade

MAX_TERM, MAX_RATE = 60, 3_600


@dataclass(frozen=True)
class Entry:
    ticket: int
    grades: tuple[Grade, ...]
    term_min: int
    term_max: int
    rate: int


def naive(entries: list[Entry], grade: Grade, term: int, max_rate: int) -> list[int]:
    return sorted(
        e.ticket for e in entries
        if grade in e.grades and e.term_min <= term <= e.term_max and e.rate <= max_rate
    )


grades = st.lists(st.sampled_from(GRADES), min_size=1, max_size=3, unique=True).map(tuple)
terms = st.integers(1, MAX_TERM)
rates = st.one_of(st.integers(1, MAX_RATE), st.sampled_from((1, 1_000, 1_200, MAX_RATE)))
adds = st.tuples(grades, terms, terms, rates)
queries = st.tuples(st.sampled_from(GRADES), terms, rates)
steps = st.lists(st.one_of(
    st.tuples(st.just("add"), adds), st.tuples(st.just("remove"), st.integers(0, 10**6)),
    st.tuples(st.just("query"), queries),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_a_query_yields_exactly_the_matching_tickets_in_ticket_order(
    script: list[tuple[str, object]],
) -> None:
    index = OrderIndex(MAX_TERM, MAX_RATE)
    held: list[Entry] = []
    ticket = 0
    for kind, arg in script:
        if kind == "add":
            assert isinstance(arg, tuple)
            chosen, a, b, rate = arg
            ticket += 1
            entry = Entry(ticket, chosen, min(a, b), max(a, b), rate)
            index.add(entry.ticket, entry.grades, entry.term_min, entry.term_max, entry.rate)
            held.append(entry)
        elif kind == "remove" and held:
            assert isinstance(arg, int)
            entry = held.pop(arg % len(held))
            index.remove(entry.ticket, entry.grades, entry.term_min, entry.term_max, entry.rate)
        elif kind == "query":
            assert isinstance(arg, tuple)
            grade, term, max_rate = arg
            assert list(index.tickets(grade, term, max_rate)) == naive(held, grade, term, max_rate)
        index.check_invariants()
    everything = set().union(*(
        index.expected_entries(e.ticket, e.grades, e.term_min, e.term_max, e.rate) for e in held
    ))
    assert index.entries() == everything


def test_a_query_reads_only_as_far_as_it_is_asked() -> None:
    index = OrderIndex(MAX_TERM, MAX_RATE)
    for ticket in range(1, 10_001):
        index.add(ticket, ("B",), 1 + ticket % 60, 60, 1 + ticket % 3_600)
    found = index.tickets("B", 60, 3_600)
    assert [next(found) for _ in range(3)] == [1, 2, 3]


def test_each_order_sits_in_one_node_of_any_listing_terms_path() -> None:
    index = OrderIndex(MAX_TERM, MAX_RATE)
    index.add(7, ("A",), 3, 41, 1_000)
    for term in range(1, MAX_TERM + 1):
        assert list(index.tickets("A", term, 1_000)) == ([7] if 3 <= term <= 41 else [])
    assert list(index.tickets("A", 20, 999)) == []
    assert list(index.tickets("B", 20, 1_000)) == []
