"""End to end through the real broker and PostgreSQL: generator format -> both consumers -> batch -> compare."""

from __future__ import annotations

import os
import re
import signal
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from core import kafka
from core.config import Settings
from core.events import parse_event
from data_generators.generate_users import generated_user_id
from tests.helpers import (
    RAW,
    STREAMING,
    consume_all,
    expected_metrics,
    known_events,
    metrics_table,
    produce,
    produce_events,
    query,
    read_topic,
    run_command,
    start_generator,
    start_service,
    stored_total,
    wait_caught_up,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_every_event_once_and_streaming_equals_batch(settings: Settings, group: str, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=1), today]
    events = known_events(3000, seed=7, days=days)
    invalid = [b"not json", b'{"event_id": "x"}', b'{"event_id":"' + str(uuid.uuid4()).encode() + b'","user_id":1,'
               b'"event_type":"refund","event_timestamp":"2026-01-01T00:00:00+00:00"}']  # fmt: skip
    produce_events(settings, events[:1500])
    produce(settings, [(None, payload) for payload in invalid])
    produce_events(settings, events[1500:])

    consume_all(settings, group, tmp_path)

    [(total, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    assert total == distinct == len(events)
    stored_ids = {row[0] for row in query(settings, "SELECT event_id::text FROM events_raw")}
    assert stored_ids == {str(e.event_id) for e in events}

    reasons = sorted(str(r[0]) for r in query(settings, "SELECT reason FROM dead_letter_events"))
    assert reasons == ["missing_field", "not_json", "unknown_event_type"]

    expected = expected_metrics(events)
    assert metrics_table(settings, "metrics_streaming_daily") == expected
    for day in days:
        assert run_command("batch.batch_metrics", day.isoformat()).returncode == 0
    assert metrics_table(settings, "metrics_batch_daily") == expected
    for day in days:
        result = run_command("batch.compare_batch_vs_stream", day.isoformat())
        assert result.returncode == 0, result.stdout + result.stderr
        assert "agree exactly" in result.stdout


def test_comparison_exits_non_zero_on_drift(settings: Settings) -> None:
    day = date(2026, 3, 1)
    query(
        settings,
        "INSERT INTO metrics_batch_daily (event_date, event_type, total_events, total_amount) VALUES (%s, 'purchase', 2, 10.00)",
        (day,),
    )
    query(
        settings,
        "INSERT INTO metrics_streaming_daily (event_date, event_type, total_events, total_amount)"
        " VALUES (%s, 'purchase', 2, 10.01)",
        (day,),
    )
    result = run_command("batch.compare_batch_vs_stream", day.isoformat())
    assert result.returncode == 1
    assert "DRIFT" in result.stdout and "+0.01" in result.stdout


def test_consumer_stopped_mid_stream_resumes_without_loss_or_double_count(settings: Settings, group: str, tmp_path: Path) -> None:
    events = known_events(20_000, seed=11, days=[datetime.now(UTC).date()])
    produce_events(settings, events[:12_000])
    # Tiny batches: many transactions, so the stop lands mid-stream.
    env = {"SINK_BATCH_SIZE": "50", "SINK_BATCH_SECONDS": "0.05"}
    raw_group, stream_group = f"raw-{group}", f"stream-{group}"

    def stored(group_id: str) -> int:
        return stored_total(settings, group_id)

    raw = start_service(RAW, raw_group, tmp_path, env)
    streaming = start_service(STREAMING, stream_group, tmp_path, env)
    wait_until(lambda: stored(raw_group) > 0 and stored(stream_group) > 0, what="first batches")
    assert raw.stop(signal.SIGINT) == 0, raw.output()
    assert streaming.stop(signal.SIGTERM) == 0, streaming.output()
    assert 0 < stored(raw_group) < len(events) and 0 < stored(stream_group) < len(events)

    produce_events(settings, events[12_000:])
    raw = start_service(RAW, raw_group, tmp_path)
    streaming = start_service(STREAMING, stream_group, tmp_path)
    try:
        wait_caught_up(settings, raw_group)
        wait_caught_up(settings, stream_group)
    finally:
        raw.stop()
        streaming.stop()

    [(total, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    assert total == distinct == len(events)
    assert metrics_table(settings, "metrics_streaming_daily") == expected_metrics(events)


def test_generator_processes_share_the_count_and_never_repeat_an_id(settings: Settings, tmp_path: Path) -> None:
    assert run_command("data_generators.generate_users", "--count", "20").returncode == 0
    result = run_command("data_generators.generate_events", "--count", "3001", "--rate", "0", "--processes", "2")
    assert result.returncode == 0, result.stderr
    assert "3,001 delivered" in result.stdout and "2 processes" in result.stdout
    events = [parse_event(value) for value in read_topic(settings, 3001)]
    assert len({e.event_id for e in events}) == 3001
    assert {e.user_id for e in events} <= {generated_user_id(42, n) for n in range(1, 21)}


def test_ctrl_c_stops_every_generator_process_and_flushes(settings: Settings, tmp_path: Path) -> None:
    """Ctrl+C in a terminal signals the whole process group: every process must stop once,
    flush what it produced, and the parent must report the sum."""
    assert run_command("data_generators.generate_users", "--count", "20").returncode == 0
    log = tmp_path / "generator.log"
    generator = start_generator(log, "--rate", "400", "--processes", "2", new_session=True)
    try:
        read_topic(settings, 50)  # polls until the first 50 events are there
        os.killpg(generator.pid, signal.SIGINT)
        assert generator.wait(timeout=60) == 0, log.read_text()
    finally:
        if generator.poll() is None:
            os.killpg(generator.pid, signal.SIGKILL)
    output = log.read_text()
    delivered = int(re.search(r"events: ([\d,]+) delivered to", output).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert ", 0 not delivered" in output and "2 processes" in output
    assert sum(kafka.end_offsets(settings.kafka, settings.kafka.topic).values()) == delivered
    assert len({parse_event(v).event_id for v in read_topic(settings, delivered)}) == delivered
