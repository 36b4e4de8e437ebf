"""Per-key rate limits: a token bucket per write key, in this process's memory.

Each key may send ``rate_per_s`` requests a second on average and a burst of as many at once
(burst = rate). The buckets live in the process: with several collector processes behind a load
balancer, each one enforces the limit on its own share of the traffic.
"""

from __future__ import annotations

import math


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; a request takes one."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there will be one."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per key id; a key whose rate changed (re-issued) gets a bucket of the new size."""

    def __init__(self) -> None:
        self._buckets: dict[int, TokenBucket] = {}

    def wait(self, key_id: int, rate_per_s: int, now: float) -> float:
        """0.0 when the key may send now, else how many seconds until it may."""
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rate_per_s:
            bucket = self._buckets[key_id] = TokenBucket(rate_per_s, rate_per_s, now)
        return bucket.take(now)

    def forget_all_but(self, key_ids: set[int]) -> None:
        """Drop the buckets of keys that are no longer live."""
        for key_id in self._buckets.keys() - key_ids:
            del self._buckets[key_id]


def retry_after(wait_s: float) -> int:
    """Whole seconds for a Retry-After header: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(wait_s))
