"""The collector's Kafka producer: a request waits until the broker acknowledged each of its events.

confluent-kafka reports each message's delivery through a callback run inside ``poll()``. The
collector polls on the event loop's own thread, every millisecond while some request waits for
reports and every 100 ms otherwise, so callbacks resolve futures directly, on the loop's thread
(no thread of ours takes the GIL per delivery report; docs/decisions.md says what the other
designs cost).

The bound on the wait is librdkafka's own ``message.timeout.ms`` (COLLECTOR_DELIVERY_TIMEOUT_MS):
every produced message gets exactly one report, delivered or failed, within it. A shorter timer
of the collector's own would answer "not delivered" for events that may still reach Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from core import kafka
from core.config import KafkaSettings

logger = logging.getLogger(__name__)

# A request waits for its acknowledgement, so batching costs each request latency. Measured with
# bench/collector.py (batches of 100): 5 ms gave 105-110k events/s at a p50 of 10 ms at half
# that rate; 1 ms a p50 of 5.5 ms but 10-30 % less throughput (more, smaller produce requests);
# 20 ms (the platform's batch producers) no more throughput and a p50 of 22 ms.
LINGER_MS = 5
# While reports are due: a millisecond adds at most that to a request's latency, and a poll that
# finds nothing costs about a microsecond.
ACTIVE_POLL_S = 0.001
# With nothing in flight, polling only serves librdkafka's error callbacks.
IDLE_POLL_S = 0.1
QUEUE_FULL = "the collector's send queue is full"

# Per event of a request: None when the broker acknowledged it, else why not.
Outcomes = list[str | None]


class _Request:
    """The events of one request in flight: their outcomes, and the future that resolves once
    every produced event has its report. Produce calls and callbacks all run on the event loop's
    thread, and no callback runs before ``send`` has produced the whole request (they run in
    ``poll``), so a plain counter is exact.

    One bound method serves every event of the request (a closure per event cost a function
    object each, and the garbage collector's time with them). A report carries the message, not
    its index, so a failed one is matched to its event by value: identical bytes in one request
    are the same event sent twice, and which copy is marked does not matter.
    """

    __slots__ = ("future", "outcomes", "remaining", "values")

    def __init__(self, values: list[bytes], future: asyncio.Future[None]) -> None:
        self.future = future
        self.values = values
        self.outcomes: Outcomes = [None] * len(values)
        self.remaining = len(values)

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's delivery report for one event of this request."""
        if error is not None:
            self._fail(message.value(), error.str())
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():  # done: cancelled, the client left
            self.future.set_result(None)

    def _fail(self, value: bytes | None, reason: str) -> None:
        for index, sent in enumerate(self.values):
            if self.outcomes[index] is None and sent == value:
                self.outcomes[index] = reason
                return
        # Unreachable while librdkafka returns the bytes it was given; should it not, no event of
        # the request may be claimed delivered on a guess: all are reported failed, the client
        # sends them again, and the consumers store an event id once.
        for index, outcome in enumerate(self.outcomes):
            if outcome is None:
                self.outcomes[index] = reason

    def give_up(self, first: int, reason: str) -> None:
        """Events from ``first`` on were never handed to librdkafka: they will get no report."""
        for index in range(first, len(self.outcomes)):
            self.outcomes[index] = reason
        self.remaining -= len(self.outcomes) - first


class Delivery:
    """An idempotent producer (acks=all) and the task that polls it.

    ``send`` produces a request's events and returns, per event, None (acknowledged by every
    in-sync replica: in Kafka) or why not. Start ``poll_forever`` as a task on the loop that
    calls ``send``; ``close`` flushes what is left.
    """

    def __init__(self, settings: KafkaSettings, timeout_ms: int, on_fatal: Callable[[str], None] | None = None) -> None:
        self.topic = settings.topic
        self.timeout_ms = timeout_ms
        self.fatal: str | None = None
        self._on_fatal = on_fatal
        self._producer = kafka.producer(
            settings,
            **{"message.timeout.ms": timeout_ms, "linger.ms": LINGER_MS, "error_cb": self._client_error},
        )
        self._in_flight = 0
        self._busy: asyncio.Event | None = None

    def _client_error(self, error: KafkaError) -> None:
        if error.fatal():
            # An idempotent producer in a fatal state refuses every message from now on: the
            # process must be restarted to get a new producer id.
            self.fatal = error.str()
            logger.error("Kafka producer failed for good (%s): stopping the collector", self.fatal)
            if self._on_fatal is not None:
                self._on_fatal(self.fatal)
            return
        kafka.log_client_error(error)

    async def poll_forever(self) -> None:
        """Serve delivery reports and client errors on this loop until cancelled."""
        self._busy = busy = asyncio.Event()
        poll = self._producer.poll
        while True:
            poll(0)
            if self._in_flight:
                await asyncio.sleep(ACTIVE_POLL_S)
                continue
            busy.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_POLL_S):
                    await busy.wait()

    async def send(self, messages: Sequence[tuple[bytes, bytes]]) -> Outcomes:
        """Produce (key, value) pairs to the topic; wait for each one's delivery report."""
        request = _Request([value for _, value in messages], asyncio.get_running_loop().create_future())
        produce, topic, delivered = self._producer.produce, self.topic, request.delivered
        for index, (key, value) in enumerate(messages):
            try:
                produce(topic, value, key, on_delivery=delivered)
            except BufferError:
                logger.warning("Kafka producer queue full: answering 503 for %d events", len(messages) - index)
                request.give_up(index, QUEUE_FULL)
                break
            except KafkaException as e:
                request.give_up(index, e.args[0].str() if e.args else type(e).__name__)
                break
        if request.remaining:
            self._in_flight += 1
            if self._busy is not None:
                self._busy.set()
            try:
                # Shielded: a client that disconnects cancels its handler, not the report count.
                await asyncio.shield(request.future)
            finally:
                self._in_flight -= 1
        return request.outcomes

    def check(self, timeout: float) -> None:
        """Ask the broker for the topic's metadata (blocking); raise KafkaException or LookupError."""
        if self.fatal is not None:
            raise LookupError(f"the producer failed for good: {self.fatal}")
        metadata: Any = self._producer.list_topics(self.topic, timeout=timeout)
        info = metadata.topics.get(self.topic)
        if info is None or info.error is not None:
            raise LookupError(f"topic {self.topic} does not exist")

    def close(self, timeout: float) -> int:
        """Flush what is still queued, waiting at most ``timeout`` seconds (blocking: call it on
        the loop's thread once the server has stopped); return how many were left undelivered."""
        left = self._producer.flush(timeout)
        if left:
            logger.warning("%d events still unacknowledged at stop (their clients got no 202)", left)
        return left
