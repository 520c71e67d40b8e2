"""Per-key token buckets. In memory: one instance owns its keys' traffic."""

import math
import time

from app.errors import RateLimited


class RateLimiter:
    """`rate` tokens a second up to `burst`; rate 0 disables limiting. O(1) per request."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, who: str) -> None:
        if self._rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(who, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1:
            self._buckets[who] = (tokens, now)
            wait = math.ceil((1 - tokens) / self._rate)
            raise RateLimited(
                "rate_limited", "too many requests for this key", headers={"Retry-After": str(wait)}
            )
        self._buckets[who] = (tokens - 1, now)
