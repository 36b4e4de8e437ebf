"""How many requests one client may file: a token bucket per client address, in this process's memory.

Each new request mails a code, so filing is limited twice: per client here (a burst of the
per-minute rate, refilled evenly), and per email address in the database (``gdpr.api.service``),
which holds across processes and restarts. The client addresses are kept in memory only, never
logged or stored, and forgotten once their bucket is full again. An IPv6 client counts by its
/64 network: one host is usually given a whole /64, and could otherwise change address per request.
"""

from __future__ import annotations

import math

from core.web import client_key

__all__ = ["ClientLimiter", "client_key", "retry_after"]

# Buckets kept before the full (idle) ones are dropped: memory stays bounded by the clients of
# the last minute or so (about 200 bytes each).
MAX_CLIENTS = 100_000


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now


class ClientLimiter:
    """``per_minute`` requests a minute per client, a burst of as many at once."""

    def __init__(self, per_minute: int, max_clients: int = MAX_CLIENTS) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}

    def wait(self, client: str, now: float) -> float:
        """Take one request for ``client``: 0.0 when it may file now, else the seconds to wait."""
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._forget_idle(now)
            bucket = self._buckets[client] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that have filled up again (they would start full anyway)."""
        refill_s = self.burst / self.rate
        for client in [c for c, b in self._buckets.items() if now - b.updated >= refill_s]:
            del self._buckets[client]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait_s: float) -> int:
    """Whole seconds for a Retry-After header: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(wait_s))
