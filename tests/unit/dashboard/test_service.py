"""Kafka's end offsets for the dashboard without a broker: asked at most every KAFKA_FRESH_S, one
probe at a time however many screens ask, and after a failure not again before KAFKA_RETRY_S."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.config import KafkaSettings
from core.errors import ServiceUnavailable
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
