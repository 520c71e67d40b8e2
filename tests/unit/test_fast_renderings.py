"""The bid path's shortcuts give what the long way gives: ids spelled as `str(UUID)` spells
them, and a just-placed bid rendered from its event as the engine's view of it renders."""

import os
import random
import re
import time
import uuid
from types import SimpleNamespace

import pytest

from app import ids
from app.ids import new_id, random_hex
from app.rendering import bid_from_view, placed_bid_json
from matching import BidPlaced, Rejection
from matching.events import Resolution
from tests.unit.builders import listing_terms, market

_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _millisecond(made: str) -> int:
    return uuid.UUID(made).int >> 80


def test_a_new_id_is_a_version_7_uuid_of_this_millisecond_in_its_canonical_spelling() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for made in ids:
        parsed = uuid.UUID(made)
        assert (str(parsed), parsed.version, parsed.variant) == (made, 7, uuid.RFC_4122)
        assert _UUID7.fullmatch(made)
        assert before <= _millisecond(made) <= after
    assert {made[19] for made in ids} == set("89ab")  # the variant's two free bits vary
    assert len({made[15:18] for made in ids}) > 1_000  # the 12 bits after the version vary


def test_ids_made_in_a_later_millisecond_sort_after_earlier_ones() -> None:
    made = [new_id()]
    for _ in range(5):
        start = time.time_ns() // 1_000_000
        while time.time_ns() // 1_000_000 == start:
            pass
        made.append(new_id())
    assert sorted(made) == made
    assert len({_millisecond(m) for m in made}) == len(made)


def test_an_id_shows_the_clocks_millisecond_after_the_clock_went_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The formatted millisecond is reused only for the same millisecond, whichever way the
    clock moved (ids stay unique by their random bits; `seq` orders, not ids)."""
    now = [1_800_000_000_123_456_789]
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=lambda: now[0]))
    later = new_id()
    now[0] -= 5_000_000  # 5 ms back
    earlier = new_id()
    assert (_millisecond(later), _millisecond(earlier)) == (1_800_000_000_123, 1_800_000_000_118)
    assert earlier[:13] != later[:13]


def test_a_forked_child_never_hands_out_its_parents_buffered_random_ids() -> None:
    ids._random.clear()
    new_id()  # a fresh buffer: the parent holds random bytes for many ids to come
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.write(write, (new_id() + random_hex(24)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    from_child = os.read(read, 100).decode()
    os.close(read)
    assert len(from_child) == 60
    parent = new_id() + random_hex(24)
    assert from_child != parent
    # What follows the millisecond and the version: the parent's bytes, had the child kept them
    # (the whole strings differ anyway whenever the two ids were made in different milliseconds).
    assert from_child[15:] != parent[15:]


def test_a_placed_bid_renders_from_its_event_as_from_the_engine_view_while_open() -> None:
    rng = random.Random(14)
    m = market(listing_terms(amount=2_000_000, max_rate_bps=3_000))
    compared = 0
    for _ in range(400):
        outcome = m.bid(rng.randrange(5_000, 60_000, 1_000), rng.randrange(100, 3_000))
        if isinstance(outcome, Rejection):
            continue
        placed = outcome[0]
        assert isinstance(placed, BidPlaced)
        assert not any(isinstance(e, Resolution) for e in outcome)
        assert placed_bid_json(placed) == bid_from_view(m.view(placed.seq))
        compared += 1
    assert compared > 100  # many accepted, and many of them after others were pushed out
