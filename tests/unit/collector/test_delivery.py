"""A request's delivery reports: it resolves only once every event has one, and never calls a
failed event delivered."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from collector.delivery import QUEUE_FULL, Delivery, _Request
from core.config import KafkaSettings


class Report:
    """What a delivery callback receives: an error (or None) and the message."""

    def __init__(self, value: bytes, error: str | None = None) -> None:
        self._value, self._error = value, error

    def value(self) -> bytes:
        return self._value

    def str(self) -> str:
        assert self._error is not None
        return self._error


def deliver(request: _Request, value: bytes, error: str | None = None) -> None:
    report = Report(value, error)
    request.delivered(cast(Any, report) if error else None, cast(Any, report))


def test_the_future_resolves_with_the_last_report_and_failures_land_on_their_event() -> None:
    async def scenario() -> None:
        request = _Request([b"a", b"b", b"c"], asyncio.get_running_loop().create_future())
        deliver(request, b"c")
        deliver(request, b"a", "Local: Message timed out")
        assert not request.future.done()
        deliver(request, b"b")
        assert request.future.done()
        assert request.outcomes == ["Local: Message timed out", None, None]

    asyncio.run(scenario())


def test_identical_events_are_marked_one_failure_each() -> None:
    async def scenario() -> None:
        request = _Request([b"a", b"a"], asyncio.get_running_loop().create_future())
        deliver(request, b"a", "failed")
        deliver(request, b"a")
        assert request.outcomes == ["failed", None]

    asyncio.run(scenario())


def test_a_failure_that_matches_no_event_fails_them_all_rather_than_guess() -> None:
    async def scenario() -> None:
        request = _Request([b"a", b"b", b"c"], asyncio.get_running_loop().create_future())
        deliver(request, b"a")
        deliver(request, b"?", "failed")
        assert request.outcomes == ["failed", "failed", "failed"]

    asyncio.run(scenario())


def test_events_never_handed_to_the_producer_are_failed_and_not_awaited() -> None:
    async def scenario() -> None:
        request = _Request([b"a", b"b", b"c"], asyncio.get_running_loop().create_future())
        request.give_up(1, "queue full")
        assert request.remaining == 1
        deliver(request, b"a")
        assert request.future.done()
        assert request.outcomes == [None, "queue full", "queue full"]

    asyncio.run(scenario())


def test_a_cancelled_request_still_counts_its_reports() -> None:
    async def scenario() -> None:
        request = _Request([b"a"], asyncio.get_running_loop().create_future())
        request.future.cancel()
        deliver(request, b"a")
        assert request.remaining == 0

    asyncio.run(scenario())


class StubProducer:
    """librdkafka's part: takes ``capacity`` messages, then raises BufferError (a full queue);
    ``poll`` reports each taken message delivered, or failed when its value is in ``failing``."""

    def __init__(self, capacity: int, failing: frozenset[bytes] = frozenset()) -> None:
        self.capacity = capacity
        self.failing = failing
        self.queued: list[tuple[bytes, Any]] = []

    def produce(self, _topic: str, value: bytes, _key: bytes, on_delivery: Any) -> None:
        if len(self.queued) >= self.capacity:
            raise BufferError
        self.queued.append((value, on_delivery))

    def poll(self, _timeout: float) -> int:
        served, self.queued = self.queued, []
        for value, callback in served:
            report = Report(value, "Broker: Not enough in-sync replicas" if value in self.failing else None)
            callback(cast(Any, report) if value in self.failing else None, cast(Any, report))
        return len(served)


def send_with(producer: StubProducer, values: list[bytes]) -> list[str | None]:
    delivery = Delivery(KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="events", partitions=1), timeout_ms=1000)
    delivery._producer = cast(Any, producer)

    async def scenario() -> list[str | None]:
        poller = asyncio.create_task(delivery.poll_forever())
        try:
            return await delivery.send([(b"user", v) for v in values])
        finally:
            poller.cancel()

    return asyncio.run(scenario())


def test_send_waits_for_every_report_and_names_each_failure() -> None:
    outcomes = send_with(StubProducer(10, failing=frozenset({b"b"})), [b"a", b"b", b"c"])
    assert outcomes == [None, "Broker: Not enough in-sync replicas", None]


def test_a_full_queue_fails_the_events_it_did_not_take() -> None:
    outcomes = send_with(StubProducer(2), [b"a", b"b", b"c", b"d"])
    assert outcomes == [None, None, QUEUE_FULL, QUEUE_FULL]
