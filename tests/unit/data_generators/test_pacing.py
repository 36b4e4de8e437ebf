"""The generator keeps a set rate in ticks of a few milliseconds, not one produce call per event.

The clock is the test's: each case says how much time has passed, so no margin depends on how
fast the machine runs the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from data_generators.events import CHUNK
from data_generators.producer import PACE_TICK_S, allowance


class Stop(threading.Event):
    """A stop flag already set (waiting on it returns at once, so no test sleeps) that records
    how long the pacing asked to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.set()
        self.waited: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(timeout)
        return super().wait(timeout)


def after(elapsed: float) -> Callable[[], float]:
    """A clock that reads ``elapsed`` seconds past a start at 0."""
    return lambda: elapsed


def test_unlimited_rate_sends_whole_chunks() -> None:
    stop = Stop()
    assert allowance(0, 0.0, 0, stop, clock=after(0.0)) == CHUNK
    assert stop.waited == []


def test_less_than_a_tick_of_events_due_waits_instead_of_sending_a_few() -> None:
    rate = 10_000.0
    stop = Stop()
    # A tenth of a tick has passed: 5 events due, a tick holds 50.
    assert allowance(rate, 0.0, 0, stop, clock=after(PACE_TICK_S / 10)) == 0
    [waited] = stop.waited
    assert waited is not None and 0 < waited <= PACE_TICK_S  # until a tick's worth is due


def test_a_tick_of_events_due_goes_at_once() -> None:
    rate = 10_000.0
    stop = Stop()
    # Two ticks' worth due, nothing sent yet: all of it goes, without waiting.
    assert allowance(rate, 0.0, 0, stop, clock=after(0.01)) == 100
    assert stop.waited == []


def test_what_is_due_goes_in_chunks_at_most() -> None:
    assert allowance(10_000.0, 0.0, 0, Stop(), clock=after(60.0)) == CHUNK


def test_what_was_sent_already_is_not_sent_again() -> None:
    rate = 10_000.0
    assert allowance(rate, 0.0, 100, Stop(), clock=after(0.01)) == 0
    assert allowance(rate, 0.0, 40, Stop(), clock=after(0.01)) == 60


def test_a_slow_rate_still_sends_one_event_at_a_time() -> None:
    rate = 10.0  # a tick holds no whole event: each goes when due
    assert allowance(rate, 0.0, 0, Stop(), clock=after(0.15)) == 1
    assert allowance(rate, 0.0, 1, Stop(), clock=after(0.15)) == 0
