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
    assert limiter.wait(1, 1, now=0.0) == 0.0
    assert limiter.wait(1, 1, now=0.0) > 0
    assert limiter.wait(2, 1, now=0.0) == 0.0


def test_a_changed_rate_takes_effect_at_once() -> None:
    limiter = RateLimiter()
    assert limiter.wait(1, 1, now=0.0) == 0.0
    assert limiter.wait(1, 1, now=0.0) > 0
    assert limiter.wait(1, 100, now=0.0) == 0.0


def test_buckets_of_keys_no_longer_live_are_dropped() -> None:
    limiter = RateLimiter()
    limiter.wait(1, 1, now=0.0)
    limiter.wait(2, 1, now=0.0)
    limiter.forget_all_but({2})
    assert limiter.wait(1, 1, now=0.0) == 0.0  # a fresh bucket
    assert limiter.wait(2, 1, now=0.0) > 0


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (7.5, 8)])
def test_retry_after_is_whole_seconds_and_never_zero(wait: float, header: int) -> None:
    assert retry_after(wait) == header
