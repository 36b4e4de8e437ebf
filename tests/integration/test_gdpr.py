"""Erasure through the real command: PII gone, requests closed, aggregates unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import Settings
from data_generators.generate_events import EventFactory
from tests.helpers import (
    RAW,
    STREAMING,
    metrics_table,
    produce_events,
    query,
    read_topic,
    run_command,
    start_service,
    wait_caught_up,
)

pytestmark = pytest.mark.integration


def test_erasure_nulls_pii_closes_requests_and_keeps_aggregates(settings: Settings, group: str, tmp_path: Path) -> None:
    assert run_command("data_generators.generate_users", "--count", "50", "--seed", "3").returncode == 0
    [(email, name)] = query(settings, "SELECT email, full_name FROM users_pii WHERE user_id = 7")
    assert email and name

    factory = EventFactory(list(range(1, 51)), seed=5)
    now = datetime.now(UTC)
    produce_events(settings, [factory.make(now) for _ in range(2000)])
    raw = start_service(RAW, f"raw-{group}", tmp_path)
    streaming = start_service(STREAMING, f"stream-{group}", tmp_path)
    try:
        wait_caught_up(settings, f"raw-{group}")
        wait_caught_up(settings, f"stream-{group}")
    finally:
        raw.stop()
        streaming.stop()
    day = now.date().isoformat()
    assert run_command("batch.batch_metrics", day).returncode == 0
    streaming_before = metrics_table(settings, "metrics_streaming_daily")
    batch_before = metrics_table(settings, "metrics_batch_daily")
    report_before = run_command("reports.generate_daily_report", day)

    mixed_case = str(email).upper()
    query(
        settings,
        "INSERT INTO privacy_requests (email) VALUES (%s), ('nobody@example.invalid'), ('not an email'), (NULL)",
        (mixed_case,),
    )
    result = run_command("gdpr.process_privacy_requests")
    assert result.returncode == 0, result.stderr
    assert "4 processed" in result.stdout

    assert query(settings, "SELECT email, full_name, address FROM users_pii WHERE user_id = 7") == [(None, None, None)]
    assert query(settings, "SELECT is_erased FROM users_public WHERE user_id = 7") == [(True,)]
    assert query(settings, "SELECT count(*) FROM users_pii WHERE email IS NULL") == [(1,)]
    statuses = query(settings, "SELECT status, email IS NULL, processed_at IS NOT NULL FROM privacy_requests ORDER BY request_id")
    assert statuses == [("completed", True, True), ("not_found", True, True), ("rejected", True, True), ("rejected", True, True)]
    leftovers = query(settings, "SELECT count(*) FROM privacy_requests WHERE email ILIKE %s", (str(email),))
    assert leftovers == [(0,)]

    assert metrics_table(settings, "metrics_streaming_daily") == streaming_before
    assert run_command("batch.batch_metrics", day).returncode == 0
    assert metrics_table(settings, "metrics_batch_daily") == batch_before
    assert run_command("reports.generate_daily_report", day).stdout == report_before.stdout

    # Processing again changes nothing: nothing is pending.
    again = run_command("gdpr.process_privacy_requests")
    assert again.returncode == 0 and "none pending" in again.stdout


def test_generator_skips_erased_users(settings: Settings) -> None:
    assert run_command("data_generators.generate_users", "--count", "3").returncode == 0
    query(settings, "UPDATE users_public SET is_erased = true WHERE user_id IN (1, 2)")
    result = run_command("data_generators.generate_events", "--count", "200", "--rate", "0", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "200 delivered" in result.stdout
    users = {json.loads(value)["user_id"] for value in read_topic(settings, 200)}
    assert users == {3}
