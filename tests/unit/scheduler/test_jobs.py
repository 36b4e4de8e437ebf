"""What each job runs and when, from the settings."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from core.config import SchedulerSettings, load_settings
from core.errors import ConfigError
from scheduler import jobs as jobs_module
from scheduler.jobs import jobs

DUE = datetime(2026, 11, 23, 0, 15, tzinfo=UTC)


def commands(settings: SchedulerSettings, name: str, due: datetime = DUE) -> list[list[str]]:
    return [step.argv(due) for step in jobs(settings)[name].steps]


def test_the_nightly_batch_recomputes_what_changed_then_compares_it() -> None:
    assert commands(SchedulerSettings(), "batch") == [
        ["batch.batch_metrics", "--changed"],
        ["batch.compare_batch_vs_stream", "--changed"],
    ]
    assert commands(SchedulerSettings(repair=True), "batch")[1] == ["batch.compare_batch_vs_stream", "--changed", "--repair"]


def test_the_daily_report_is_of_the_day_closed_before_its_due_time() -> None:
    assert commands(SchedulerSettings(), "daily-report", datetime(2026, 11, 23, 1, 0, tzinfo=UTC)) == [
        ["reports.generate_daily_report", "2026-11-22"]
    ]
    assert commands(SchedulerSettings(), "daily-report", datetime(2027, 1, 1, 1, 0, tzinfo=UTC)) == [
        ["reports.generate_daily_report", "2026-12-31"]
    ]


def test_the_scores_are_recomputed_from_the_summaries_the_batch_keeps() -> None:
    # On a young platform (too little to score or fit) each step says so and succeeds.
    assert commands(SchedulerSettings(), "analytics") == [
        ["analytics.rfm", "--skip-if-too-few"],
        ["analytics.clv", "--skip-if-too-few"],
    ]
    settings = SchedulerSettings()
    assert settings.batch_at < settings.analytics_at < settings.daily_report_at, "after the batch, before the report"


def test_reports_retention_and_the_deadline_check() -> None:
    table = jobs(SchedulerSettings())
    # The trail is checked and its head sealed before the report: a forged trail fails the job.
    assert commands(SchedulerSettings(), "gdpr-audit-report") == [["gdpr.verify_audit"], ["reports.gdpr_audit_report"]]
    assert commands(SchedulerSettings(), "retention") == [["gdpr.retention"]]
    assert commands(SchedulerSettings(), "erasure-upkeep") == [
        ["gdpr.person_days"],
        ["gdpr.process_privacy_requests", "--finish-vacuum"],
    ]
    assert table["privacy-deadlines"].steps == () and table["privacy-deadlines"].check is not None
    # Catch-up runs them in this order: the batch before the scores and the report of the same night.
    assert list(table) == [
        "batch",
        "analytics",
        "daily-report",
        "gdpr-audit-report",
        "retention",
        "erasure-upkeep",
        "privacy-deadlines",
    ]


def test_each_job_runs_at_its_configured_time() -> None:
    settings = SchedulerSettings(
        batch_at=time(0, 30), analytics_at=time(2, 5), daily_report_at=time(6, 0), audit_report=(4, time(7, 45)),
        retention_at=time(4, 10), erasure_upkeep_at=time(4, 40), deadline_check_minute=50,
    )  # fmt: skip
    described = {name: job.schedule.describe() for name, job in jobs(settings).items()}
    assert described == {
        "batch": "daily at 00:30",
        "analytics": "daily at 02:05",
        "daily-report": "daily at 06:00",
        "gdpr-audit-report": "weekly on fri at 07:45",
        "retention": "daily at 04:10",
        "erasure-upkeep": "daily at 04:40",
        "privacy-deadlines": "hourly at :50",
    }


def test_the_modules_the_jobs_run_are_known_whatever_the_settings() -> None:
    assert jobs_module.job_modules() == {
        "batch.batch_metrics",
        "batch.compare_batch_vs_stream",
        "analytics.rfm",
        "analytics.clv",
        "reports.generate_daily_report",
        "reports.gdpr_audit_report",
        "gdpr.verify_audit",
        "gdpr.retention",
        "gdpr.process_privacy_requests",
        "gdpr.person_days",
    }


# -- the settings -------------------------------------------------------------------------------


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"STACK_FILE": str(tmp_path / "absent.env"), **values}


def test_scheduler_settings_have_defaults_and_come_from_the_environment(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).scheduler == SchedulerSettings()
    chosen = load_settings(
        env(
            tmp_path, SCHEDULER_BATCH_AT="1:05", SCHEDULER_REPAIR="TRUE", SCHEDULER_AUDIT_REPORT_AT="Sun 23:59",
            SCHEDULER_ANALYTICS_AT="02:30",
            SCHEDULER_CATCH_UP="false", SCHEDULER_DEADLINE_CHECK_MINUTE="0", SCHEDULER_JOB_TIMEOUT_S="90",
        )
    ).scheduler  # fmt: skip
    assert chosen == SchedulerSettings(
        batch_at=time(1, 5), repair=True, analytics_at=time(2, 30), audit_report=(6, time(23, 59)), catch_up=False,
        deadline_check_minute=0, job_timeout_s=90.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SCHEDULER_BATCH_AT", "24:00", "SCHEDULER_BATCH_AT='24:00' is not a time of day HH:MM"),
        ("SCHEDULER_DAILY_REPORT_AT", "6pm", "SCHEDULER_DAILY_REPORT_AT='6pm' is not a time of day"),
        ("SCHEDULER_RETENTION_AT", "03:60", "SCHEDULER_RETENTION_AT='03:60'"),
        ("SCHEDULER_ANALYTICS_AT", "0:7", "SCHEDULER_ANALYTICS_AT='0:7' is not a time of day"),
        ("SCHEDULER_AUDIT_REPORT_AT", "monday 02:00", "is not a weekday and a time"),
        ("SCHEDULER_AUDIT_REPORT_AT", "mon", "SCHEDULER_AUDIT_REPORT_AT='mon' is not a weekday and a time"),
        ("SCHEDULER_DEADLINE_CHECK_MINUTE", "60", "is not a minute of the hour"),
        ("SCHEDULER_DEADLINE_WARN_DAYS", "0", "SCHEDULER_DEADLINE_WARN_DAYS=0 must be at least 1"),
        ("SCHEDULER_REPAIR", "yes", "SCHEDULER_REPAIR='yes' is not true or false"),
        ("SCHEDULER_CATCH_UP", "", "SCHEDULER_CATCH_UP='' is not true or false"),
        ("SCHEDULER_JOB_TIMEOUT_S", "0", "SCHEDULER_JOB_TIMEOUT_S=0 must be positive"),
    ],
)
def test_bad_scheduler_settings_name_the_variable(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env(tmp_path, **{key: value}))


def test_the_settings_line_names_every_time() -> None:
    line = SchedulerSettings().describe()
    assert (
        "batch=00:15" in line
        and "analytics=00:45" in line
        and "audit_report=mon 02:00" in line
        and "catch_up=True" in line
        and "(UTC)" in line
    )
