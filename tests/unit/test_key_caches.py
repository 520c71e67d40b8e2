"""The bounded in-memory structures behind authentication: rate buckets and refused keys."""

import pytest

from app.errors import RateLimited
from app.keys.service import _Recent
from app.ratelimit import RateLimiter


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_key_is_remembered_for_its_ttl_only() -> None:
    clock = _Clock()
    refused = _Recent(ttl_s=30, size=10, clock=clock)
    refused.add(b"bad")
    assert b"bad" in refused and b"other" not in refused
    clock.now += 29.9
    assert b"bad" in refused
    clock.now += 0.2
    assert b"bad" not in refused


def test_refused_keys_are_bounded_and_the_oldest_is_forgotten_first() -> None:
    refused = _Recent(ttl_s=30, size=3)
    for digest in (b"a", b"b", b"c", b"d"):
        refused.add(digest)
    assert [d in refused for d in (b"a", b"b", b"c", b"d")] == [False, True, True, True]


def test_rate_buckets_are_bounded_and_a_dropped_caller_starts_full() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, max_callers=2)
    limiter.check("a")
    with pytest.raises(RateLimited):
        limiter.check("a")
    limiter.check("b")
    limiter.check("c")  # "a" is dropped to make room
    limiter.check("a")
    assert len(limiter._buckets) == 2


def test_a_rate_of_zero_turns_limiting_off() -> None:
    limiter = RateLimiter(rate=0, burst=0)
    for _ in range(1000):
        limiter.check("anyone")


def test_requiring_a_token_does_not_take_one() -> None:
    limiter = RateLimiter(rate=0.001, burst=1)
    for _ in range(3):
        limiter.require("a")
    limiter.check("a")
    with pytest.raises(RateLimited):
        limiter.require("a")
