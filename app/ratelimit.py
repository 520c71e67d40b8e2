"""Token buckets per caller (a key, or a client address). In memory: only the writer instance
serves the API, so one process sees all of a caller's traffic."""

import math
import time
from collections.abc import Hashable

from app.errors import RateLimited


class RateLimiter:
    """`rate` tokens a second up to `burst` per caller; rate 0 disables limiting. O(1) per request.

    At most `max_callers` buckets are kept (addresses are unbounded): past that the oldest one is
    dropped, which only gives that caller a full bucket again.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        detail: str = "too many requests for this key",
        max_callers: int = 100_000,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._detail = detail
        self._max_callers = max_callers
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def check(self, who: Hashable) -> None:
        """Take a token, or raise 429 with `Retry-After`."""
        self._take(who, 1.0)

    def require(self, who: Hashable) -> None:
        """Raise 429 if `who` has no token left, without taking one."""
        self._take(who, 0.0)

    def _take(self, who: Hashable, cost: float) -> None:
        if self._rate <= 0:
            return
        now = time.monotonic()
        found = self._buckets.get(who)
        if found is None:
            if not cost:
                return  # a full bucket, and nothing to record
            if len(self._buckets) >= self._max_callers:
                del self._buckets[next(iter(self._buckets))]
            found = (self._burst, now)
        tokens = min(self._burst, found[0] + (now - found[1]) * self._rate)
        if tokens < 1:
            self._buckets[who] = (tokens, now)
            wait = math.ceil((1 - tokens) / self._rate)
            raise RateLimited("rate_limited", self._detail, headers={"Retry-After": str(wait)})
        self._buckets[who] = (tokens - cost, now)
