"""One token bucket for every HTTP service: a burst, then the rate; memory bounded by the clients
of the last refill; IPv6 counted by its /64. The clock is injected: no test waits."""

from __future__ import annotations

import pytest

from core.ratelimit import Buckets, TokenBucket, retry_after
from core.web import client_key


def test_a_burst_of_the_rate_then_one_request_per_interval() -> None:
    buckets: Buckets[str] = Buckets()
    per_minute = 3

    def take(client: str, now: float) -> float:
        return buckets.take(client, per_minute / 60.0, per_minute, now)

    assert [take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert take("a", 0.0) == pytest.approx(20.0)
    assert take("b", 0.0) == 0.0  # another client is not affected
    assert take("a", 20.0) == 0.0
    assert take("a", 20.0) > 0


def test_a_bucket_refills_at_its_rate_up_to_its_burst_only() -> None:
    bucket = TokenBucket(rate=2.0, burst=4.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [0.0] * 4
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.25) == pytest.approx(0.25)  # half a token back: wait for the other half
    assert bucket.take(1_000_000.0) == 0.0
    assert bucket.tokens == pytest.approx(3.0)  # never more than the burst saved up


def test_a_token_given_back_can_be_taken_again() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0, now=0.0)
    assert bucket.take(0.0) == 0.0
    bucket.give_back()
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) > 0


def test_a_changed_rate_gives_a_new_full_bucket() -> None:
    buckets: Buckets[int] = Buckets()
    assert buckets.take(1, 1.0, 1.0, 0.0) == 0.0
    assert buckets.take(1, 1.0, 1.0, 0.0) > 0
    assert buckets.take(1, 5.0, 5.0, 0.0) == 0.0


def test_full_buckets_are_forgotten_when_there_are_many() -> None:
    buckets: Buckets[str] = Buckets(max_keys=10)
    for n in range(10):
        buckets.take(f"old-{n}", 1.0, 60.0, 0.0)
    buckets.take("new", 1.0, 60.0, 100.0)
    assert len(buckets) == 1


def test_a_flood_of_busy_clients_cannot_grow_the_memory() -> None:
    buckets: Buckets[str] = Buckets(max_keys=100)
    for n in range(1_000):
        buckets.take(f"10.0.{n // 256}.{n % 256}", 1.0, 60.0, float(n) / 1000)
        assert len(buckets) <= 100


def test_forgotten_keys_start_again_full() -> None:
    buckets: Buckets[int] = Buckets()
    buckets.take(1, 1.0, 1.0, 0.0)
    buckets.take(2, 1.0, 1.0, 0.0)
    buckets.keep_only(lambda key: key == 2)
    assert buckets.take(1, 1.0, 1.0, 0.0) == 0.0
    assert buckets.take(2, 1.0, 1.0, 0.0) > 0


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


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.01, 1), (0.5, 1), (1.0, 1), (1.01, 2), (7.5, 8), (20.2, 21)])
def test_retry_after_is_whole_seconds_and_never_zero(wait: float, header: int) -> None:
    assert retry_after(wait) == header
