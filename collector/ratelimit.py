"""Rate limits per write key and client (``core.ratelimit``'s token buckets).

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

from typing import Literal

from core.ratelimit import MAX_KEYS, Buckets, TokenBucket, retry_after

__all__ = ["RateLimiter", "TokenBucket", "retry_after"]


class RateLimiter:
    """One bucket per key id and one per (key id, client); a key whose rate changed (re-issued)
    gets buckets of the new size. ``client_rate_per_s`` 0: no per-client share (every client is
    one, as behind a proxy that does not pass the client's address)."""

    def __init__(self, client_rate_per_s: int = 0, max_clients: int = MAX_KEYS) -> None:
        self.client_rate_per_s = client_rate_per_s
        self._buckets: Buckets[int] = Buckets()
        self._clients: Buckets[tuple[int, str]] = Buckets(max_clients)

    def wait(self, key_id: int, rate_per_s: int, now: float, client: str | None = None) -> tuple[float, Literal["client", "key"]]:
        """(0.0, ...) when the key may send now from ``client``, else how many seconds until it
        may and which limit it met: the client's share or the key's total. ``client`` None: the
        key has no per-client share (a server key)."""
        share = min(self.client_rate_per_s, rate_per_s)
        own = None
        if client is not None and share > 0:
            own = self._clients.bucket((key_id, client), share, share, now)
            wait = own.take(now)
            if wait > 0:
                return wait, "client"
        wait = self._buckets.take(key_id, rate_per_s, rate_per_s, now)
        if wait > 0 and own is not None:
            own.give_back()  # refused by the key's total: the client's share was not spent
        return wait, "key"

    def forget_all_but(self, key_ids: set[int]) -> None:
        """Drop the buckets of keys that are no longer live."""
        self._buckets.keep_only(lambda key_id: key_id in key_ids)
        self._clients.keep_only(lambda pair: pair[0] in key_ids)
