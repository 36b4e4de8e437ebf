"""The generator keeps a set rate in ticks of a few milliseconds, not one produce call per event."""

from __future__ import annotations

import threading
import time

from data_generators.events import CHUNK
from data_generators.generate_events import PACE_TICK_S, allowance


def stopped() -> threading.Event:
    """A stop flag already set: waiting on it returns at once, so no test sleeps."""
    event = threading.Event()
    event.set()
    return event


def test_unlimited_rate_sends_whole_chunks() -> None:
    assert allowance(0, time.monotonic(), 0, stopped()) == CHUNK


def test_less_than_a_tick_of_events_due_waits_instead_of_sending_a_few() -> None:
    rate = 10_000.0
    started = time.monotonic() - PACE_TICK_S / 10  # a tenth of a tick has passed: 5 events due
    assert allowance(rate, started, 0, stopped()) == 0


def test_a_tick_of_events_due_goes_at_once() -> None:
    rate = 10_000.0
    started = time.monotonic() - 2 * PACE_TICK_S  # two ticks' worth due, nothing sent yet
    sent = allowance(rate, started, 0, stopped())
    assert 2 * PACE_TICK_S * rate <= sent <= CHUNK


def test_what_was_sent_already_is_not_sent_again() -> None:
    rate = 10_000.0
    started = time.monotonic() - 2 * PACE_TICK_S
    assert allowance(rate, started, int(2 * PACE_TICK_S * rate), stopped()) == 0


def test_a_slow_rate_still_sends_one_event_at_a_time() -> None:
    rate = 10.0  # a tick holds no whole event: each goes when due
    assert allowance(rate, time.monotonic() - 0.15, 0, stopped()) == 1
