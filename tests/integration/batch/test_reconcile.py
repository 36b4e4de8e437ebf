"""Lambda reconciliation: ranges, tolerance, and repair of closed days from the batch figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.config import Settings
from tests.helpers import (
    RAW,
    STREAMING,
    expected_metrics,
    known_events,
    metrics_table,
    produce_events,
    query,
    run_command,
    start_service,
    wait_caught_up,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def two_days(settings: Settings, group: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Yesterday and today through the default consumer groups, batch run for both."""
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=1), today]
    events = known_events(2_000, seed=31, days=days)
    produce_events(settings, events)
    raw = start_service(RAW, "raw-events-sink", tmp_path)
    streaming = start_service(STREAMING, "streaming-metrics", tmp_path)
    try:
        wait_caught_up(settings, "raw-events-sink")
        wait_caught_up(settings, "streaming-metrics")
    finally:
        raw.stop()
        streaming.stop()
    assert run_command("batch.batch_metrics", "--from", days[0].isoformat()).returncode == 0
    return days, events


def test_repair_rewrites_a_drifting_closed_day_and_records_it(settings: Settings, two_days) -> None:  # type: ignore[no-untyped-def]
    (yesterday, today), events = two_days
    query(
        settings,
        "UPDATE metrics_streaming_daily SET total_events = total_events + 5, total_amount = total_amount + 1.23"
        " WHERE event_date IN (%s, %s) AND event_type = 'purchase'",
        (yesterday, today),
    )
    drift = run_command("batch.compare_batch_vs_stream", "--from", yesterday.isoformat())
    assert drift.returncode == 1
    assert drift.stdout.count("DRIFT in 1 event type(s): purchase") == 2

    repaired = run_command("batch.compare_batch_vs_stream", "--from", yesterday.isoformat(), "--repair")
    assert repaired.returncode == 1, repaired.stdout  # today is not closed: not repaired, still drifting
    assert f"REPAIRED: 1 streaming row(s) of {yesterday}" in repaired.stdout
    assert f"not repaired: {today} is not closed yet" in repaired.stdout
    expected = expected_metrics(events)
    assert {k: v for k, v in metrics_table(settings, "metrics_streaming_daily").items() if k[0] == yesterday} == {
        k: v for k, v in expected.items() if k[0] == yesterday
    }
    [(day, kind, s_count, b_count)] = query(
        settings, "SELECT event_date, event_type, streaming_count, batch_count FROM metrics_repairs"
    )
    assert (day, kind) == (yesterday, "purchase") and s_count == b_count + 5
    assert run_command("batch.compare_batch_vs_stream", yesterday.isoformat()).returncode == 0


def test_repair_refuses_when_the_consumers_are_not_in_step(settings: Settings, two_days) -> None:  # type: ignore[no-untyped-def]
    (yesterday, _today), _events = two_days
    query(settings, "UPDATE metrics_streaming_daily SET total_events = total_events + 1 WHERE event_date = %s", (yesterday,))
    query(
        settings,
        "UPDATE consumer_offsets SET next_offset = next_offset - 1 WHERE consumer_group = 'streaming-metrics' AND partition = 0",
    )
    before = metrics_table(settings, "metrics_streaming_daily")
    result = run_command("batch.compare_batch_vs_stream", yesterday.isoformat(), "--repair", "--repair-wait", "0.5")
    assert result.returncode == 2
    assert "have not stored the same offsets" in result.stderr
    assert metrics_table(settings, "metrics_streaming_daily") == before
    assert query(settings, "SELECT count(*) FROM metrics_repairs") == [(0,)]


def test_tolerance_accepts_small_relative_differences(settings: Settings, two_days) -> None:  # type: ignore[no-untyped-def]
    (yesterday, _today), _events = two_days
    query(
        settings,
        "UPDATE metrics_streaming_daily SET total_events = total_events + 1 WHERE event_date = %s AND event_type = 'page_view'",
        (yesterday,),
    )
    assert run_command("batch.compare_batch_vs_stream", yesterday.isoformat()).returncode == 1
    loose = run_command("batch.compare_batch_vs_stream", yesterday.isoformat(), "--tolerance", "0.01")
    assert loose.returncode == 0 and "within 0.01" in loose.stdout


def test_a_day_whose_raw_events_are_gone_keeps_its_batch_metrics(settings: Settings) -> None:
    # Retention drops raw events, never the aggregates: recomputing such a day must not empty it.
    query(
        settings,
        "INSERT INTO metrics_batch_daily (event_date, event_type, total_events, total_amount)"
        " VALUES ('2020-01-01', 'purchase', 7, 70.00)",
    )
    result = run_command("batch.batch_metrics", "2020-01-01")
    assert result.returncode == 0, result.stderr
    assert "no events stored for this day" in result.stdout
    assert query(settings, "SELECT total_events FROM metrics_batch_daily WHERE event_date = '2020-01-01'") == [(7,)]


def _store(settings: Settings, day: str, n: int, ago: str = "0 seconds") -> None:
    """``n`` events of ``day`` as the raw consumer stores them, ingested ``ago``."""
    query(
        settings,
        "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, kafka_partition,"
        " kafka_offset, ingested_at) SELECT gen_random_uuid(), gen_random_uuid(), 'purchase', %s::date + time '12:00',"
        " %s::date, 1.00, 0, g, now() - %s::interval FROM generate_series(1, %s) AS g",
        (day, day, ago, n),
    )


def test_the_batch_job_recomputes_exactly_the_closed_days_that_received_events(settings: Settings) -> None:
    today = datetime.now(UTC).date()
    d1, d2 = (today - timedelta(days=3)).isoformat(), (today - timedelta(days=2)).isoformat()
    _store(settings, d1, 3, "2 hours")
    _store(settings, d2, 4, "2 hours")
    _store(settings, today.isoformat(), 5)
    first = run_command("batch.batch_metrics", "--changed")
    assert first.returncode == 0, first.stderr
    assert f"days changed (every closed day (first run)): {d1}, {d2}" in first.stdout
    counts = "SELECT event_date::text, total_events FROM metrics_batch_daily ORDER BY 1"
    assert query(settings, counts) == [(d1, 3), (d2, 4)]  # today is open: the streaming figures stand

    # An hour later, a late event of d1 arrives; nothing else does.
    query(settings, "UPDATE batch_runs SET started_at = started_at - interval '1 hour'")
    _store(settings, d1, 1)
    late = run_command("batch.batch_metrics", "--changed")
    assert late.returncode == 0, late.stderr
    assert f"): {d1}\n" in late.stdout
    assert query(settings, counts) == [(d1, 4), (d2, 4)]
    assert query(settings, "SELECT cardinality(days) FROM batch_runs ORDER BY id") == [(2,), (1,)]
    # The comparison covers the days the run recomputed: d1 has no streaming figures here.
    compared = run_command("batch.compare_batch_vs_stream", "--changed")
    assert compared.returncode == 1, compared.stderr
    assert f"days of the last batch run: {d1}\n" in compared.stdout and f"drift on 1 day(s): {d1}" in compared.stdout

    again = run_command("batch.batch_metrics", "--changed", "2020-01-01")
    assert again.returncode == 2 and "--changed chooses the days itself" in again.stderr
