"""The platform's retry policy (core.retry): which errors are retried, how long it waits between
tries, when it gives up, and how a stop ends it. A fake clock and sleep: nothing waits for real."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from core.retry import Backoff, GaveUp, Interrupted, Retry, RetryAfter, RetryPolicy, call


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


def transient(error: BaseException) -> bool:
    return isinstance(error, Transient)


class FakeTime:
    """A monotonic clock that only the fake sleep moves; it records every wait."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def failing(errors: list[BaseException], result: str = "done") -> Callable[[], str]:
    """An action that raises ``errors`` one per call, then returns ``result``."""
    pending: Iterator[BaseException] = iter(errors)

    def action() -> str:
        error = next(pending, None)
        if error is not None:
            raise error
        return result

    return action


def test_the_default_backoff_doubles_from_half_a_second_to_ten() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.delay(100_000) == 10.0  # a long outage never overflows


def test_full_jitter_waits_a_random_part_of_the_same_delay() -> None:
    backoff = Backoff(jitter="full")
    assert [backoff.delay(n, rand=lambda: 0.5) for n in (1, 2, 3, 10)] == [0.25, 0.5, 1.0, 5.0]
    assert backoff.delay(3, rand=lambda: 0.0) == 0.0


def test_decorrelated_jitter_stays_between_the_first_and_the_maximum_delay() -> None:
    backoff = Backoff(first_s=0.5, max_s=10.0, jitter="decorrelated")
    assert backoff.delay(1, None, rand=lambda: 0.0) == 0.5
    assert backoff.delay(1, None, rand=lambda: 1.0) == 1.5  # up to three times the first
    assert backoff.delay(2, 4.0, rand=lambda: 1.0) == 10.0  # 12 s capped
    assert backoff.delay(5, 8.0, rand=lambda: 0.0) == 0.5


def test_a_backoff_needs_a_positive_first_delay_no_longer_than_the_maximum() -> None:
    with pytest.raises(ValueError, match="first_s"):
        Backoff(first_s=0.0)
    with pytest.raises(ValueError, match="first_s"):
        Backoff(first_s=2.0, max_s=1.0)


def test_transient_failures_are_retried_with_backoff_until_the_action_succeeds() -> None:
    fake = FakeTime()
    retries: list[Retry] = []
    action = failing([Transient("a"), Transient("b"), Transient("c")])
    result = call(action, RetryPolicy(transient), on_retry=retries.append, clock=fake.clock, sleep=fake.sleep)
    assert result == "done"
    assert fake.waits == [0.5, 1.0, 2.0]
    assert [(r.number, str(r.error), r.delay_s, r.elapsed_s) for r in retries] == [
        (1, "a", 0.5, 0.0),
        (2, "b", 1.0, 0.5),
        (3, "c", 2.0, 1.5),
    ]


def test_an_error_that_is_not_transient_is_raised_at_once() -> None:
    fake = FakeTime()
    with pytest.raises(Permanent, match="refused"):
        call(failing([Transient("a"), Permanent("refused")]), RetryPolicy(transient), clock=fake.clock, sleep=fake.sleep)
    assert fake.waits == [0.5]


def test_no_wait_begins_that_would_end_past_the_budget() -> None:
    fake = FakeTime()
    policy = RetryPolicy(transient, budget_s=3.0)
    with pytest.raises(GaveUp) as gave_up:
        call(failing([Transient(str(n)) for n in range(10)]), policy, clock=fake.clock, sleep=fake.sleep)
    assert fake.waits == [0.5, 1.0]  # 1.5 s spent: the next wait (2 s) would end at 3.5 s
    assert (gave_up.value.retries, gave_up.value.elapsed_s, str(gave_up.value.error)) == (2, 1.5, "2")
    assert gave_up.value.__cause__ is gave_up.value.error


def test_the_number_of_retries_can_be_bounded_and_zero_means_none() -> None:
    fake = FakeTime()
    with pytest.raises(GaveUp) as gave_up:
        call(failing([Transient(str(n)) for n in range(10)]), RetryPolicy(transient, max_retries=3), sleep=fake.sleep)
    assert (len(fake.waits), str(gave_up.value.error)) == (3, "3")
    with pytest.raises(GaveUp):
        call(failing([Transient("once")]), RetryPolicy(transient, max_retries=0), sleep=fake.sleep)
    assert len(fake.waits) == 3


def test_a_stop_set_before_a_failure_ends_the_retries_without_a_wait() -> None:
    fake = FakeTime()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted) as interrupted:
        call(failing([Transient("away")]), RetryPolicy(transient), stop=stop, sleep=fake.sleep)
    assert fake.waits == [] and str(interrupted.value.error) == "away"


def test_a_stop_during_a_wait_ends_the_retries_without_another_try() -> None:
    fake = FakeTime()
    stop = threading.Event()
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        raise Transient("away")

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.waits) == 2:
            stop.set()  # as a signal handler would, while the policy waits

    with pytest.raises(Interrupted):
        call(action, RetryPolicy(transient), stop=stop, clock=fake.clock, sleep=sleep)
    assert (len(calls), fake.waits) == (2, [0.5, 1.0])


def test_without_a_sleep_the_stop_flag_is_what_is_waited_on() -> None:
    stop = threading.Event()
    stop.set()  # stop.wait returns at once; a time.sleep(0.5) would not be interrupted
    policy = RetryPolicy(transient, max_retries=0)
    with pytest.raises(Interrupted):
        call(failing([Transient("away")]), policy, stop=stop)


def test_a_server_s_retry_after_is_waited_instead_of_the_backoff_and_counts_against_the_budget() -> None:
    fake = FakeTime()
    policy = RetryPolicy(transient, budget_s=10.0)
    action = failing([RetryAfter(3.0), Transient("a"), RetryAfter(3.0), Transient("b")])
    assert call(action, policy, clock=fake.clock, sleep=fake.sleep) == "done"
    assert fake.waits == [3.0, 0.5, 3.0, 1.0]  # the backoff grows with the transient failures only
    with pytest.raises(GaveUp):
        call(failing([RetryAfter(6.0), RetryAfter(6.0)]), policy, clock=fake.clock, sleep=fake.sleep)
