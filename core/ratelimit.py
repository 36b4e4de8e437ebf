"""Token buckets in this process's memory, by key, with a bounded number of keys: the rate limits
of the HTTP services (the collector's per write key and client, the privacy API's per client).

A bucket holds at most ``burst`` tokens, refilled at ``rate`` a second; a request takes one. The
clock is the caller's (``time.monotonic()`` in the services, any number in tests). A bucket that
has filled up again is the same as a new one, so it can be forgotten: that is what keeps the
memory bounded when many clients (addresses) come and go. The buckets live in the process: with
several processes behind a load balancer each one limits its own share of the traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# Buckets kept before the full (idle) ones are dropped: memory stays bounded by the clients of
# the last minute or so (about 200 bytes each).
MAX_KEYS = 100_000


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

    def give_back(self) -> None:
        """Return the token just taken (the request was refused by another limit after all)."""
        self.tokens += 1

    def idle(self, now: float) -> bool:
        """Whether the bucket is full again at ``now``: forgetting it changes nothing."""
        return now - self.updated >= self.burst / self.rate


class Buckets(Generic[K]):
    """One token bucket per key, at most ``max_keys`` of them: when full, the idle buckets are
    dropped, and if fewer than half are idle the least recently used half (a flood of addresses
    cannot grow the memory; the clients dropped start again with a full bucket)."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._buckets: dict[K, TokenBucket] = {}

    def bucket(self, key: K, rate: float, burst: float, now: float) -> TokenBucket:
        """``key``'s bucket; a new, full one for a new key or one whose rate or burst changed."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate or bucket.burst != burst:
            if bucket is None and len(self._buckets) >= self.max_keys:
                self._forget_idle(now)
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        return bucket

    def take(self, key: K, rate: float, burst: float, now: float) -> float:
        """Take a token from ``key``'s bucket: 0.0 when it may go now, else the seconds to wait."""
        return self.bucket(key, rate, burst, now).take(now)

    def keep_only(self, keep: Callable[[K], bool]) -> None:
        """Drop the buckets of the keys ``keep`` refuses (a revoked write key's, say)."""
        for key in [key for key in self._buckets if not keep(key)]:
            del self._buckets[key]

    def _forget_idle(self, now: float) -> None:
        idle = [key for key, bucket in self._buckets.items() if bucket.idle(now)]
        if len(idle) < self.max_keys // 2:
            by_age = sorted(self._buckets, key=lambda key: self._buckets[key].updated)
            idle = by_age[: self.max_keys // 2]
        for key in idle:
            del self._buckets[key]

    def __getitem__(self, key: K) -> TokenBucket:
        return self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait_s: float) -> int:
    """Whole seconds for a Retry-After header: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(wait_s))
