"""core.sink.metrics: what one committed batch adds, the lag of the partitions an instance holds,
and the cost of it all per batch (it must stay invisible next to a batch's own work)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import date

from prometheus_client import REGISTRY

from core.sink.batch import DeadLetter, Dropped, Polled
from core.sink.metrics import SinkMetrics, count_redactions


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def group() -> str:
    return f"unit-{uuid.uuid4().hex[:8]}"


def test_a_committed_batch_adds_its_counts_by_reason_and_its_freshness() -> None:
    name = group()
    sink = SinkMetrics(name)
    produced_ms = int(time.time() * 1000) - 2_500  # its oldest event was produced 2.5 s ago
    sink.consumed(10)
    sink.committed(
        messages=10,
        stored=6,
        dead=[
            DeadLetter(0, 1, "not_json", "[...]"),
            DeadLetter(0, 2, "not_json", "[...]"),
            DeadLetter(1, 5, "refused_by_database", ""),
        ],
        dropped={(date(2026, 11, 22), "no_consent"): 1, (date(2026, 11, 23), "no_consent"): 2},
        seconds=0.2,
        produced=(produced_ms, produced_ms + 100),
    )
    assert value("platform_sink_events_consumed_total", group=name) == 10
    assert value("platform_sink_events_stored_total", group=name) == 6
    assert value("platform_sink_dead_letters_total", group=name, reason="not_json") == 2
    assert value("platform_sink_dead_letters_total", group=name, reason="refused_by_database") == 1
    assert value("platform_sink_events_dropped_total", group=name, reason="no_consent") == 3
    assert value("platform_sink_batch_size_sum", group=name) == 10
    assert value("platform_sink_commit_duration_seconds_sum", group=name) == 0.2
    freshness = value("platform_sink_freshness_seconds", group=name)
    assert freshness is not None and 2.5 <= freshness < 60
    assert value("platform_sink_batch_freshness_seconds_count", group=name) == 1
    assert value("platform_sink_batch_freshness_seconds_bucket", group=name, le="1.0") == 0
    assert value("platform_sink_batch_freshness_seconds_bucket", group=name, le="60.0") == 1


def test_a_batch_without_timestamps_leaves_freshness_alone() -> None:
    name = group()
    sink = SinkMetrics(name)
    sink.committed(messages=1, stored=1, dead=[], dropped={}, seconds=0.01, produced=None)
    assert value("platform_sink_batch_freshness_seconds_count", group=name) == 0
    assert value("platform_sink_events_stored_total", group=name) == 1


def test_the_last_commit_starts_at_the_start_and_moves_with_each_commit() -> None:
    name = group()
    before = time.time()
    sink = SinkMetrics(name)
    started = value("platform_sink_last_commit_timestamp_seconds", group=name)
    assert started is not None and started >= before
    sink.committed(messages=1, stored=1, dead=[], dropped={}, seconds=0.01, produced=None)
    committed = value("platform_sink_last_commit_timestamp_seconds", group=name)
    assert committed is not None and committed >= started


def test_lag_is_per_partition_never_negative_and_gone_once_revoked() -> None:
    name = group()
    sink = SinkMetrics(name)
    sink.lag(0, 120)
    sink.lag(1, -3)  # the embedded broker's high watermark can be short of the committed offset
    assert value("platform_sink_lag_messages", group=name, partition="0") == 120
    assert value("platform_sink_lag_messages", group=name, partition="1") == 0
    sink.revoked([0, 7])
    assert value("platform_sink_lag_messages", group=name, partition="0") is None
    assert value("platform_sink_lag_messages", group=name, partition="1") == 0


def test_broker_reachability_is_one_or_zero() -> None:
    name = group()
    sink = SinkMetrics(name)
    assert value("platform_sink_broker_reachable", group=name) == 1
    sink.broker_reachable(False)
    assert value("platform_sink_broker_reachable", group=name) == 0


def test_redactions_are_counted_by_kind_only() -> None:
    before = value("platform_ingest_redactions_total", kind="email") or 0
    count_redactions(Counter({"email": 2}))
    assert value("platform_ingest_redactions_total", kind="email") == before + 2


def test_the_dropped_events_are_counted_once_per_batch() -> None:
    """The transaction and the metrics share one count of a batch's dropped events."""
    dropped = [Dropped(0, n, date(2026, 11, 23), "no_consent") for n in range(3)]
    polled: Polled[None] = Polled([], [], None, dropped)
    assert polled.dropped_counts() is polled.dropped_counts()
    assert polled.dropped_counts() == {(date(2026, 11, 23), "no_consent"): 3}
