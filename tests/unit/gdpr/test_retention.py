"""Retention without services: which files are reports of which day, the cutoffs, the one-line
summaries, the settings (0 or less refused) and the topic's retention.ms."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from core import kafka
from core.config import DEFAULTS, PROJECT_ROOT, RetentionSettings, load_kafka_settings, load_settings
from core.errors import ConfigError
from gdpr.retention import KINDS, Removal, cutoff_day, midnight, report_day
from gdpr.retention.__main__ import build_parser

DAY = date(2026, 5, 31)


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"STACK_FILE": str(tmp_path / "absent.env"), **values}


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("business_report_2026-05-04.md", date(2026, 5, 4)),
        ("business_report_2026-05-04_revenue_by_hour.png", date(2026, 5, 4)),
        ("gdpr_audit_report_2025-12-31.json", date(2025, 12, 31)),
        ("gdpr_audit_report_2025-12-31.html", date(2025, 12, 31)),
        ("gdpr_audit_report_2025-12-31.md.partial", date(2025, 12, 31)),  # a crash mid-write
        ("business_report_2026-02-30.md", None),  # no such day
        ("business_report_2026-05-04.md.bak", None),
        ("business_report_2026-05-04.txt", None),
        ("my_business_report_2026-05-04.md", None),
        ("access_request_12.json", None),
        ("notes.md", None),
    ],
)
def test_a_report_file_is_known_by_the_day_in_its_name(name: str, day: date | None) -> None:
    assert report_day(name) == day


def test_the_cutoff_is_the_first_day_kept_and_starts_at_midnight_utc() -> None:
    assert cutoff_day(DAY, 30) == date(2026, 5, 1)
    assert cutoff_day(date(2024, 3, 1), 1) == date(2024, 2, 29)
    assert midnight(date(2026, 5, 1)) == datetime(2026, 5, 1, tzinfo=UTC)


def test_a_summary_says_how_much_of_which_days_went_and_the_cutoff() -> None:
    removal = Removal("raw_events", date(2025, 10, 23), dry_run=False)
    removal.add(1_000_000, date(2025, 1, 3), date(2025, 1, 3))
    removal.add(204_332, date(2025, 1, 1), date(2025, 10, 22))
    removal.add(0, date(1999, 1, 1), date(2030, 1, 1))  # nothing removed: the days do not count
    assert removal.summary() == "raw events: 1,204,332 rows of 2025-01-01..2025-10-22 removed (cutoff 2025-10-23)"
    dry = Removal("reports", date(2025, 4, 1), dry_run=True, unit="files", note="x")
    dry.add(1, date(2025, 3, 2), date(2025, 3, 2))
    assert dry.summary() == "report files: 1 file of 2025-03-02 would be removed (cutoff 2025-04-01; x)"
    requests = Removal("privacy_requests", date(2023, 5, 1), dry_run=False, unit="requests", verb="cleared")
    requests.add(3)
    assert requests.summary() == "processed privacy requests: 3 requests cleared (cutoff 2023-05-01)"
    nothing = Removal("dead_letters", date(2026, 5, 1), dry_run=True, note="not shown when nothing goes")
    assert nothing.summary() == "dead letters: nothing to remove (cutoff 2026-05-01)"


def test_the_defaults_keep_a_year_and_a_month_of_events_and_a_week_in_kafka(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path))
    assert settings.retention == RetentionSettings(
        raw_event_days=395, dead_letter_days=30, privacy_request_days=1096, report_days=400
    )
    assert settings.kafka.retention_hours == 168 == int(DEFAULTS["KAFKA_RETENTION_HOURS"])
    assert kafka.topic_config(settings.kafka) == {"retention.ms": "604800000"}
    custom = load_settings(env(tmp_path, RETENTION_DAYS="30", DEAD_LETTER_RETENTION_DAYS="1", REPORT_RETENTION_DAYS="7"))
    assert (custom.retention.raw_event_days, custom.retention.dead_letter_days, custom.retention.report_days) == (30, 1, 7)


@pytest.mark.parametrize(
    "variable",
    ["RETENTION_DAYS", "DEAD_LETTER_RETENTION_DAYS", "PRIVACY_REQUEST_RETENTION_DAYS", "REPORT_RETENTION_DAYS",
     "ACCESS_EXPORT_DAYS", "KAFKA_RETENTION_HOURS"],
)  # fmt: skip
@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_retention_of_zero_or_less_is_refused_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}={value} must be at least 1$"):
        load_settings(env(tmp_path, **{variable: value}))


def test_a_retention_beyond_a_century_or_not_a_number_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REPORT_RETENTION_DAYS=40000 is more than 36525 days"):
        load_settings(env(tmp_path, REPORT_RETENTION_DAYS="40000"))
    with pytest.raises(ConfigError, match="RETENTION_DAYS='a year' is not an integer"):
        load_settings(env(tmp_path, RETENTION_DAYS="a year"))


def test_kafka_may_not_keep_the_events_longer_than_events_raw_does(tmp_path: Path) -> None:
    assert load_kafka_settings(environ=env(tmp_path, RETENTION_DAYS="2", KAFKA_RETENTION_HOURS="48")).retention_hours == 48
    with pytest.raises(ConfigError, match="KAFKA_RETENTION_HOURS=49 would keep the events in Kafka longer than RETENTION_DAYS=2"):
        load_kafka_settings(environ=env(tmp_path, RETENTION_DAYS="2", KAFKA_RETENTION_HOURS="49"))


def test_the_command_runs_every_kind_or_only_those_named() -> None:
    parser = build_parser()
    assert parser.parse_args([]).only is None and not parser.parse_args([]).dry_run
    args = parser.parse_args(["--dry-run", "--only", "reports", "raw_events", "--only", "dead_letters"])
    assert args.dry_run and args.only == ["reports", "raw_events", "dead_letters"]
    assert list(KINDS) == ["raw_events", "dead_letters", "access_exports", "privacy_requests", "reports"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--only", "metrics_batch_daily"])


def test_the_docs_document_each_retention_setting_with_its_default_and_the_login() -> None:
    configuration = (PROJECT_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for variable in ("RETENTION_DAYS", "DEAD_LETTER_RETENTION_DAYS", "PRIVACY_REQUEST_RETENTION_DAYS", "REPORT_RETENTION_DAYS",
                     "ACCESS_EXPORT_DAYS", "KAFKA_RETENTION_HOURS"):  # fmt: skip
        assert f"| `{variable}` | `{DEFAULTS[variable]}` |" in configuration, variable
    gdpr = (PROJECT_ROOT / "docs" / "gdpr.md").read_text(encoding="utf-8")
    assert "| `login_retention` | `retention_worker` | `gdpr.retention` |" in gdpr
