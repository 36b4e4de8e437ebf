"""Reports for a day with known events: the Markdown files hold the right figures."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from core.config import Settings
from tests.helpers import query, run_command

pytestmark = pytest.mark.integration

DAY = date(2026, 5, 4)


def insert_known_day(settings: Settings) -> None:
    """Five events on DAY: three page views, one add_to_cart, purchases of 19.99 and 10.51."""
    rows = [
        ("page_view", None), ("page_view", None), ("page_view", None), ("add_to_cart", None),
        ("purchase", "19.99"), ("purchase", "10.51"),
    ]  # fmt: skip
    for offset, (kind, amount) in enumerate(rows):
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, kafka_partition,"
            " kafka_offset) VALUES (gen_random_uuid(), 1, %s, %s, %s, %s, 0, %s)",
            (kind, f"{DAY.isoformat()}T12:00:00+00:00", DAY, amount, offset),
        )
    query(
        settings,
        "INSERT INTO metrics_streaming_daily (event_date, event_type, event_count, revenue) VALUES"
        " (%(d)s, 'page_view', 3, 0), (%(d)s, 'add_to_cart', 1, 0), (%(d)s, 'purchase', 2, 30.50)",
        {"d": DAY},
    )


def test_business_report_file_has_the_day_figures(settings: Settings) -> None:
    insert_known_day(settings)
    assert run_command("batch.batch_metrics", DAY.isoformat()).returncode == 0
    result = run_command("reports.generate_daily_report", DAY.isoformat())
    assert result.returncode == 0, result.stderr
    path = settings.reports_dir / "business_report_2026-05-04.md"
    text = path.read_text(encoding="utf-8")
    assert str(path) in result.stdout
    assert "Total events: **6**" in text
    assert "Total revenue: **30.50 EUR**" in text
    assert "Figures from: **batch**" in text
    assert "| purchase | 2 | 2 | +0 | 30.50 | 30.50 | +0.00 |" in text
    assert "| page_view | 3 | 3 | +0 |" in text
    assert "agree exactly" in text


def test_business_report_for_a_day_without_data_says_so(settings: Settings) -> None:
    result = run_command("reports.generate_daily_report", "2020-01-01")
    assert result.returncode == 0
    assert "No events were recorded for this day." in (settings.reports_dir / "business_report_2020-01-01.md").read_text()


def test_gdpr_audit_report_counts_requests_and_erasures(settings: Settings, tmp_path: Path) -> None:
    assert run_command("data_generators.generate_users", "--count", "5").returncode == 0
    [(email,)] = query(settings, "SELECT email FROM users_pii WHERE user_id = 2")
    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s), ('ghost@example.invalid')", (email,))
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    query(settings, "INSERT INTO privacy_requests (email) VALUES ('later@example.invalid')")

    result = run_command("reports.gdpr_audit_report")
    assert result.returncode == 0, result.stderr
    [report] = list(settings.reports_dir.glob("gdpr_audit_report_*.md"))
    text = report.read_text(encoding="utf-8")
    assert "Privacy requests: **3** (2 processed, 1 pending)" in text
    assert "Users with anonymized PII: **1**" in text
    assert "| completed | 1 |" in text and "| not_found | 1 |" in text and "| pending | 1 |" in text
    assert str(email) not in text
