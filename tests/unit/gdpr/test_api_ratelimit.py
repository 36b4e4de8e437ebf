"""How many requests one client may file: a bucket per client, IPv6 counted by its /64."""

from __future__ import annotations

import pytest

from gdpr.api.ratelimit import ClientLimiter, client_key, retry_after


def test_a_burst_of_the_rate_then_one_request_per_interval() -> None:
    limiter = ClientLimiter(per_minute=3)
    assert [limiter.wait("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait("a", 0.0) == pytest.approx(20.0)
    assert limiter.wait("b", 0.0) == 0.0  # another client is not affected
    assert limiter.wait("a", 20.0) == 0.0
    assert limiter.wait("a", 20.0) > 0


def test_full_buckets_are_forgotten_when_there_are_many() -> None:
    limiter = ClientLimiter(per_minute=60, max_clients=10)
    for n in range(10):
        limiter.wait(f"old-{n}", 0.0)
    limiter.wait("new", 100.0)
    assert len(limiter) == 1


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unix-socket", "unix-socket"),
    ],
)
def test_one_client_is_one_ipv4_address_or_one_ipv6_64(remote: str, key: str) -> None:
    assert client_key(remote) == key


def test_retry_after_is_never_zero() -> None:
    assert retry_after(0.01) == 1 and retry_after(20.2) == 21
