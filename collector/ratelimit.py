"""Rate limits per write key and client: token buckets in this process's memory.

Each key may send ``rate_per_s`` requests a second on average and a burst of as many at once
(burst = rate): that total is the ceiling. Within the total of a key meant for browsers (one
issued with origins: public, since it is embedded in pages) each client (its IPv4 address or IPv6
/64, ``core.web.client_key``) gets at most ``client_rate_per_s`` of it, so one script holding a
public web key cannot spend the whole rate and lock the real browsers out. A server key (no
origins) is secret, and its one producer may send from one address at the key's whole rate. Client addresses stay in
memory, never logged, and are dropped once their bucket is full again. The buckets live in the
process: with several collector processes behind a load balancer, each one enforces the limits
on its own share of the traffic.
"""

from __future__ import annotations

import math
from typing import Literal

# Client buckets kept before the full (idle) ones are dropped: memory stays bounded by the
# clients of the last few seconds (about 200 bytes each).
MAX_CLIENTS = 100_000


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
    """One bucket per key id and one per (key id, client); a key whose rate changed (re-issued)
    gets buckets of the new size. ``client_rate_per_s`` 0: no per-client share (every client is
    one, as behind a proxy that does not pass the client's address)."""

    def __init__(self, client_rate_per_s: int = 0, max_clients: int = MAX_CLIENTS) -> None:
        self.client_rate_per_s = client_rate_per_s
        self.max_clients = max_clients
        self._buckets: dict[int, TokenBucket] = {}
        self._clients: dict[tuple[int, str], TokenBucket] = {}

    def wait(self, key_id: int, rate_per_s: int, now: float, client: str | None = None) -> tuple[float, Literal["client", "key"]]:
        """(0.0, ...) when the key may send now from ``client``, else how many seconds until it
        may and which limit it met: the client's share or the key's total. ``client`` None: the
        key has no per-client share (a server key)."""
        share = min(self.client_rate_per_s, rate_per_s)
        own = None
        if client is not None and share > 0:
            own = self._clients.get((key_id, client))
            if own is None or own.rate != share:
                if len(self._clients) >= self.max_clients:
                    self._forget_idle(now)
                own = self._clients[(key_id, client)] = TokenBucket(share, share, now)
            wait = own.take(now)
            if wait > 0:
                return wait, "client"
        bucket = self._buckets.get(key_id)
        if bucket is None or bucket.rate != rate_per_s:
            bucket = self._buckets[key_id] = TokenBucket(rate_per_s, rate_per_s, now)
        wait = bucket.take(now)
        if wait > 0 and own is not None:
            own.tokens += 1  # refused by the key's total: the client's share was not spent
        return wait, "key"

    def _forget_idle(self, now: float) -> None:
        """Drop the client buckets that have filled up again (they would start full anyway); if
        every one is busy, the oldest half: a flood of addresses cannot grow the memory."""
        idle = [c for c, b in self._clients.items() if now - b.updated >= b.burst / b.rate]
        if len(idle) < self.max_clients // 2:
            idle = sorted(self._clients, key=lambda c: self._clients[c].updated)[: self.max_clients // 2]
        for client in idle:
            del self._clients[client]

    def forget_all_but(self, key_ids: set[int]) -> None:
        """Drop the buckets of keys that are no longer live."""
        for key_id in self._buckets.keys() - key_ids:
            del self._buckets[key_id]
        for pair in [pair for pair in self._clients if pair[0] not in key_ids]:
            del self._clients[pair]


def retry_after(wait_s: float) -> int:
    """Whole seconds for a Retry-After header: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(wait_s))
