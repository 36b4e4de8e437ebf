"""Per-key rate limits: a token bucket with burst = rate."""

from __future__ import annotations

import pytest

from collector.ratelimit import RateLimiter, TokenBucket, retry_after


def test_a_full_bucket_allows_a_burst_of_rate_requests_then_refuses() -> None:
    bucket = TokenBucket(rate=5, burst=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(0.0) == pytest.approx(0.2)


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=10, burst=10, now=0.0)
    for _ in range(10):
        bucket.take(0.0)
    assert bucket.take(0.05) == pytest.approx(0.05)  # half a token back: wait for the other half
    assert bucket.take(0.1) == 0.0
    assert bucket.take(1000.0) == 0.0
    assert bucket.tokens == pytest.approx(9)


def test_each_key_has_its_own_bucket() -> None:
    limiter = RateLimiter()
    assert limiter.wait(1, 1, now=0.0)[0] == 0.0
    assert limiter.wait(1, 1, now=0.0)[0] > 0
    assert limiter.wait(2, 1, now=0.0)[0] == 0.0


def test_a_changed_rate_takes_effect_at_once() -> None:
    limiter = RateLimiter()
    assert limiter.wait(1, 1, now=0.0)[0] == 0.0
    assert limiter.wait(1, 1, now=0.0)[0] > 0
    assert limiter.wait(1, 100, now=0.0)[0] == 0.0


def test_buckets_of_keys_no_longer_live_are_dropped() -> None:
    limiter = RateLimiter(client_rate_per_s=1)
    limiter.wait(1, 1, now=0.0, client="a")
    limiter.wait(2, 1, now=0.0, client="a")
    limiter.forget_all_but({2})
    assert limiter.wait(1, 1, now=0.0, client="a")[0] == 0.0  # fresh buckets
    assert limiter.wait(2, 1, now=0.0, client="a")[0] > 0


def test_one_client_gets_its_share_of_a_key_and_the_others_the_rest() -> None:
    """A script with a public web key once took the key's whole rate: now it takes its share."""
    limiter = RateLimiter(client_rate_per_s=10)
    assert [limiter.wait(1, 200, now=0.0, client="script")[0] == 0 for _ in range(15)] == [True] * 10 + [False] * 5
    assert limiter.wait(1, 200, now=0.0, client="script")[1] == "client"
    assert all(limiter.wait(1, 200, now=0.0, client=f"browser {i}")[0] == 0 for i in range(10))


def test_the_keys_total_is_the_ceiling_and_a_refused_request_spends_no_share() -> None:
    limiter = RateLimiter(client_rate_per_s=10)
    for i in range(20):
        assert limiter.wait(1, 20, now=0.0, client=f"browser {i}")[0] == 0.0
    assert limiter.wait(1, 20, now=0.0, client="late")[1] == "key"
    assert limiter._clients[(1, "late")].tokens == 10  # refused by the total: its share is whole
    assert limiter.wait(1, 5, now=0.0, client="x") == (0.0, "key")  # a key below the share: the key's rate


def test_a_server_key_has_no_share_only_its_total() -> None:
    """A back-end producer with a server key (no origins) sends from one address: the share once
    held it to 10 of its key's 200 requests a second."""
    limiter = RateLimiter(client_rate_per_s=10)
    assert all(limiter.wait(1, 200, now=0.0)[0] == 0.0 for _ in range(200))
    assert limiter.wait(1, 200, now=0.0)[1] == "key"


def test_without_a_share_every_client_is_one() -> None:
    limiter = RateLimiter(client_rate_per_s=0)
    assert limiter.wait(1, 1, now=0.0, client="a")[0] == 0.0
    assert limiter.wait(1, 1, now=0.0, client="b") == (1.0, "key")


def test_a_flood_of_client_addresses_cannot_grow_the_memory() -> None:
    limiter = RateLimiter(client_rate_per_s=10, max_clients=100)
    for i in range(1_000):
        limiter.wait(1, 10**9, now=0.0, client=f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._clients) <= 100


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (7.5, 8)])
def test_retry_after_is_whole_seconds_and_never_zero(wait: float, header: int) -> None:
    assert retry_after(wait) == header
