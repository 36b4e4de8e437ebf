"""The sink's Prometheus metrics: what each consumer group consumed, stored, dead-lettered and
dropped, its batches and commits, its lag per partition and how fresh its last commit was.

Everything is updated once per batch (by the thread that did the work) or once per lag refresh,
never per event: a batch of 50,000 events costs a few counter increments and three histogram
observations. Labels are the consumer group, the partition and the reasons the code names
(``core.events`` for invalid events, ``core.consent`` for dropped ones), never anything of an event.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from prometheus_client import Counter, Gauge, Histogram

from core.sink.batch import DeadLetter

# Messages per committed batch: one at low load, up to SINK_BATCH_SIZE (50,000) under pressure.
BATCH_SIZE_BUCKETS = (1, 10, 100, 500, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000)
# One transaction: milliseconds for a small batch, about a second for 50,000 events; beyond a
# minute (DB_STATEMENT_TIMEOUT_MS) it was split or retried.
COMMIT_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# From production to visibility: the targets of docs/benchmarks.md are p99 < 0.5 s at half load and < 2 s at
# 80 %; minutes mean a backlog.
FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

CONSUMED = Counter(
    "platform_sink_events_consumed", "Messages read from Kafka and decided (valid, invalid or dropped).", ["group"]
)
STORED = Counter(
    "platform_sink_events_stored",
    "Valid events committed: rows of events_raw (raw-events sink) or counted in the daily metrics (streaming).",
    ["group"],
)
DEAD_LETTERS = Counter(
    "platform_sink_dead_letters",
    "Invalid events and events the database refused, by reason; the raw-events sink stores them in "
    "dead_letter_events, the streaming consumer skips them.",
    ["group", "reason"],
)
DROPPED = Counter(
    "platform_sink_events_dropped",
    "Valid events neither stored nor counted for want of analytics consent, by reason.",
    ["group", "reason"],
)
BATCH_SIZE = Histogram(
    "platform_sink_batch_size",
    "Messages per committed batch (one PostgreSQL transaction).",
    ["group"],
    buckets=BATCH_SIZE_BUCKETS,
)
COMMIT_SECONDS = Histogram(
    "platform_sink_commit_duration_seconds",
    "Time to write and commit one batch with its offsets, retries and isolation of refused events included.",
    ["group"],
    buckets=COMMIT_SECONDS_BUCKETS,
)
FRESHNESS = Gauge(
    "platform_sink_freshness_seconds",
    "Age, at its commit, of the oldest event (by its Kafka timestamp) of the last committed batch.",
    ["group"],
)
FRESHNESS_SECONDS = Histogram(
    "platform_sink_batch_freshness_seconds",
    "Age at commit of the oldest event of each committed batch: how long after production events became visible.",
    ["group"],
    buckets=FRESHNESS_BUCKETS,
)
LAST_COMMIT = Gauge(
    "platform_sink_last_commit_timestamp_seconds",
    "When this instance last committed a batch (Unix time); its start until the first commit.",
    ["group"],
)
LAG = Gauge(
    "platform_sink_lag_messages",
    "Messages of an assigned partition not yet committed: the high watermark the client last fetched "
    "minus the next offset to commit (refreshed every second).",
    ["group", "partition"],
)
BROKER_REACHABLE = Gauge(
    "platform_sink_broker_reachable", "1 while this instance reaches the Kafka broker, 0 once it has lost it.", ["group"]
)
REDACTIONS = Counter(
    "platform_ingest_redactions",
    "Values of personal data redacted from event metadata before storage, by kind (email, phone, ip, card, iban).",
    ["kind"],
)


class SinkMetrics:
    """The instruments of one consumer group, bound to its label once (a labelled child per
    batch would cost a dictionary look-up and a lock each)."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._consumed = CONSUMED.labels(group)
        self._stored = STORED.labels(group)
        self._batch_size = BATCH_SIZE.labels(group)
        self._commit_seconds = COMMIT_SECONDS.labels(group)
        self._freshness = FRESHNESS.labels(group)
        self._freshness_seconds = FRESHNESS_SECONDS.labels(group)
        self._last_commit = LAST_COMMIT.labels(group)
        self._broker = BROKER_REACHABLE.labels(group)
        self._last_commit.set(time.time())
        self._broker.set(1)
        self._partitions: set[int] = set()

    def consumed(self, messages: int) -> None:
        """A poll's messages were decided (polling thread)."""
        self._consumed.inc(messages)

    def committed(
        self,
        *,
        messages: int,
        stored: int,
        dead: Sequence[DeadLetter],
        dropped: Mapping[tuple[date, str], int],
        seconds: float,
        produced: tuple[int, int] | None,
    ) -> None:
        """One batch committed (writer thread): ``messages`` in it, ``stored`` of them valid and
        written, its dead letters and its dropped events per (day, reason), both usually none and
        counted by reason, how long the transaction took and the Kafka timestamps (ms) of its
        oldest and newest message."""
        now = time.time()
        self._stored.inc(stored)
        self._batch_size.observe(messages)
        self._commit_seconds.observe(seconds)
        self._last_commit.set(now)
        if dead:
            for reason, n in Tally(d.reason for d in dead).items():
                DEAD_LETTERS.labels(self.group, reason).inc(n)
        for (_day, reason), n in dropped.items():
            DROPPED.labels(self.group, reason).inc(n)
        if produced is not None:
            age = max(now - produced[0] / 1000.0, 0.0)
            self._freshness.set(age)
            self._freshness_seconds.observe(age)

    def lag(self, partition: int, messages: int) -> None:
        """The lag of an assigned partition (polling thread)."""
        self._partitions.add(partition)
        LAG.labels(self.group, str(partition)).set(max(messages, 0))

    def revoked(self, partitions: Iterable[int]) -> None:
        """Partitions went to another instance: their lag is no longer this instance's to say."""
        for partition in partitions:
            if partition in self._partitions:
                self._partitions.discard(partition)
                LAG.remove(self.group, str(partition))

    def broker_reachable(self, reachable: bool) -> None:
        self._broker.set(1 if reachable else 0)


def count_redactions(redactions: Tally[str]) -> None:
    """Add one batch's redactions, by kind (the raw-events writer, once per batch it encodes)."""
    for kind, n in redactions.items():
        REDACTIONS.labels(kind).inc(n)
