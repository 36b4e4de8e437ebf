"""The platform's periodic jobs: when each is due and what it runs.

Each job is one or more of the platform's own commands (``python -m MODULE ARGS``), run as a
subprocess so that it logs in to PostgreSQL as its own component, exactly as when a person types
it; the deadline check is the scheduler's own, small enough to run in-process as its login.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.config import SchedulerSettings, Settings
from scheduler import deadlines
from scheduler.schedule import Schedule

BATCH = "batch"
ANALYTICS = "analytics"
DAILY_REPORT = "daily-report"
AUDIT_REPORT = "gdpr-audit-report"
RETENTION = "retention"
ERASURE_UPKEEP = "erasure-upkeep"
DEADLINES = "privacy-deadlines"


@dataclass(frozen=True)
class Step:
    """One command of a job: ``python -m module`` with the arguments for the due time."""

    module: str
    arguments: Callable[[datetime], tuple[str, ...]] = lambda _due: ()

    def argv(self, scheduled_for: datetime) -> list[str]:
        return [self.module, *self.arguments(scheduled_for)]


@dataclass(frozen=True)
class Job:
    """A periodic job: its name, when it is due, and either its commands (run in order, the next
    only after the previous one succeeded) or an in-process check returning one line on what it
    found."""

    name: str
    schedule: Schedule
    description: str
    steps: tuple[Step, ...] = ()
    check: Callable[[Settings], str] | None = None


def closed_day(scheduled_for: datetime) -> tuple[str, ...]:
    """The UTC day before the due time: the day a run after midnight reports on."""
    return ((scheduled_for.date() - timedelta(days=1)).isoformat(),)


def skip_if_too_few(_due: datetime) -> tuple[str, ...]:
    """The scoring commands' flag to succeed quietly while there is too little data to score."""
    return ("--skip-if-too-few",)


def daily(at_hour: int, at_minute: int) -> Schedule:
    return Schedule(minute=at_minute, hour=at_hour)


def jobs(settings: SchedulerSettings) -> dict[str, Job]:
    """Every job, by name, in the order catch-up runs them (the batch before the analytics and the reports)."""
    repair = ("--repair",) if settings.repair else ()
    table = (
        Job(
            BATCH,
            daily(settings.batch_at.hour, settings.batch_at.minute),
            "batch metrics of the closed day and of every day that received late events, then the comparison"
            + (" with repair" if settings.repair else ""),
            steps=(
                Step("batch.batch_metrics", lambda _due: ("--changed",)),
                Step("batch.compare_batch_vs_stream", lambda _due: ("--changed", *repair)),
            ),
        ),
        Job(
            ANALYTICS,
            daily(settings.analytics_at.hour, settings.analytics_at.minute),
            "per-person RFM scores and the lifetime-value fit, from the summaries the batch keeps",
            # Each replaces its own per-person rows. On a young platform (no summarised day yet, or
            # too few repeat buyers to fit) a step says so in one line and succeeds, keeping what
            # was stored before, rather than failing the job (and its alert) every night.
            steps=(Step("analytics.rfm", skip_if_too_few), Step("analytics.clv", skip_if_too_few)),
        ),
        Job(
            DAILY_REPORT,
            daily(settings.daily_report_at.hour, settings.daily_report_at.minute),
            "the daily business report of the closed day",
            steps=(Step("reports.generate_daily_report", closed_day),),
        ),
        Job(
            AUDIT_REPORT,
            Schedule(
                minute=settings.audit_report_at.minute, hour=settings.audit_report_at.hour, weekday=settings.audit_report_weekday
            ),
            "the audit trail's chain and seals checked and its head sealed (AUDIT_SEAL_KEY), then the GDPR audit report",
            # A trail that fails its check fails the job (and its alert) before any report says otherwise.
            steps=(Step("gdpr.verify_audit"), Step("reports.gdpr_audit_report")),
        ),
        Job(
            RETENTION,
            daily(settings.retention_at.hour, settings.retention_at.minute),
            "storage limitation: what is older than its retention goes",
            steps=(Step("gdpr.retention"),),
        ),
        Job(
            ERASURE_UPKEEP,
            daily(settings.erasure_upkeep_at.hour, settings.erasure_upkeep_at.minute),
            "each person's list of event days (the days retention dropped out, the closed days in), then the index "
            "cleanup large erasures left",
            steps=(
                Step("gdpr.person_days"),
                Step("gdpr.process_privacy_requests", lambda _due: ("--finish-vacuum",)),
            ),
        ),
        Job(
            DEADLINES,
            Schedule(minute=settings.deadline_check_minute),
            f"privacy requests overdue or due within {settings.deadline_warn_days} days (a warning in the log)",
            check=deadlines.check,
        ),
    )
    return {job.name: job for job in table}


def job_modules() -> set[str]:
    """Every command the jobs run, whatever the settings: the scheduler's container must hold
    them and their logins' passwords (tests/unit/test_compose.py)."""
    return {step.module for job in jobs(SchedulerSettings(repair=True)).values() for step in job.steps}
