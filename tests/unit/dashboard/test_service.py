"""The dashboard service without a broker: Kafka's end offsets asked at most every KAFKA_FRESH_S, one
probe at a time however many screens ask, and after a failure not again before KAFKA_RETRY_S; today's
funnel of people read again once older than ten times its cost, a minute at most."""

from __future__ import annotations

import asyncio
import logging
from datetime import date

import pytest

from analytics import funnels
from core.config import KafkaSettings
from core.errors import ServiceUnavailable
from dashboard import service
from dashboard.service import KAFKA_FRESH_S, KAFKA_RETRY_S, EndOffsets

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="t", partitions=3)


class Probe:
    """Stands in for core.kafka.end_offsets: answers ``ends`` or, while ``down``, fails as it does."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    def __call__(self, settings: KafkaSettings, topic: str) -> dict[int, int]:
        self.calls += 1
        if self.down:
            raise ServiceUnavailable(f"Kafka at {settings.bootstrap_servers} is not reachable: start it")
        return {0: 10 * self.calls, 1: 5}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_end_offsets_are_asked_again_only_once_they_are_stale(clock: Clock) -> None:
    probe = Probe()
    ends = EndOffsets(KAFKA, "t", probe, clock)

    async def scenario() -> list[dict[int, int] | None]:
        seen = [await ends.get(), await ends.get()]
        clock.now += KAFKA_FRESH_S
        seen.append(await ends.get())
        return seen

    assert asyncio.run(scenario()) == [{0: 10, 1: 5}, {0: 10, 1: 5}, {0: 20, 1: 5}]
    assert probe.calls == 2


def test_screens_asking_at_once_share_one_probe(clock: Clock) -> None:
    probe = Probe()
    ends = EndOffsets(KAFKA, "t", probe, clock)

    async def scenario() -> list[dict[int, int] | None]:
        return list(await asyncio.gather(*(ends.get() for _ in range(5))))

    assert asyncio.run(scenario()) == [{0: 10, 1: 5}] * 5
    assert probe.calls == 1


def test_kafka_down_is_unknown_said_once_and_asked_again_after_a_pause(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe()
    probe.down = True
    ends = EndOffsets(KAFKA, "t", probe, clock)

    async def scenario() -> list[dict[int, int] | None]:
        seen = [await ends.get()]
        clock.now += KAFKA_FRESH_S  # fresh enough for an answer, not for a failure
        seen.append(await ends.get())
        clock.now += KAFKA_RETRY_S
        seen.append(await ends.get())
        probe.down = False
        clock.now += KAFKA_RETRY_S
        seen.append(await ends.get())
        return seen

    with caplog.at_level(logging.INFO, logger="dashboard.service"):
        assert asyncio.run(scenario()) == [None, None, None, {0: 30, 1: 5}]
    assert probe.calls == 3
    assert caplog.text.count("lag unknown: Kafka at 127.0.0.1:1 is not reachable") == 1
    assert "Kafka at 127.0.0.1:1 answers again" in caplog.text


def a_funnel(viewed: int) -> funnels.Funnel:
    day = date(2026, 12, 7)
    return funnels.Funnel(3600, day, day, [funnels.FunnelRow(day, None, viewed, 0, 0, None, None)], [])


def test_todays_funnel_is_read_again_once_older_than_ten_times_its_cost() -> None:
    clock = Clock()
    cache = service.FunnelCache(clock)
    assert cache.fresh() is None  # nothing read yet
    first = a_funnel(10)
    cache.keep(first, 0.5)
    clock.now += service.FUNNEL_COST_FACTOR * 0.5 - 0.01
    assert cache.fresh() is first
    clock.now += 0.01
    assert cache.fresh() is None  # as old as ten readings: read again


def test_a_cheap_funnel_is_read_with_every_summary_and_a_dear_one_at_most_a_minute_old() -> None:
    clock = Clock()
    cache = service.FunnelCache(clock)
    cache.keep(a_funnel(10), 0.0)
    assert cache.fresh() is None
    dear = a_funnel(20)
    cache.keep(dear, 3600.0)
    clock.now += service.FUNNEL_MAX_AGE_S - 0.01
    assert cache.fresh() is dear
    clock.now += 0.01
    assert cache.fresh() is None


def test_showing_the_cached_funnel_does_not_make_it_younger() -> None:
    clock = Clock()
    cache = service.FunnelCache(clock)
    kept = a_funnel(10)
    cache.keep(kept, 1.0)
    clock.now += 5.0
    cache.keep(kept, None)  # a summary that showed the cached one
    clock.now += service.FUNNEL_COST_FACTOR * 1.0 - 5.0
    assert cache.fresh() is None
