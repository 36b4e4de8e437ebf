"""``python -m scheduler status``: each job's schedule, next due time, last success and latest runs,
as a table for people."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.config import Settings
from scheduler import runs
from scheduler.jobs import Job
from scheduler.schedule import needs_catch_up


@dataclass(frozen=True)
class JobStatus:
    """What ``status`` shows of one job."""

    job: Job
    next_due: datetime
    latest_due: datetime
    last_success: datetime | None
    runs: list[runs.Run]

    @property
    def missed(self) -> bool:
        return needs_catch_up(self.last_success, self.latest_due)


def collect(settings: Settings, jobs: Iterable[Job], now: datetime, per_job: int) -> list[JobStatus]:
    """Read the runs as the scheduler's login and combine them with each job's schedule."""
    database = settings.database
    with runs.connection(database, "scheduler status") as conn, conn, conn.cursor() as cur:
        last = runs.last_successes(cur)
        latest = runs.latest_runs(cur, per_job)
    return [
        JobStatus(
            job=job,
            next_due=job.schedule.next_due(now),
            latest_due=job.schedule.latest_due(now),
            last_success=last.get(job.name),
            runs=[run for run in latest if run.job == job.name],
        )
        for job in jobs
    ]


def minute(at: datetime | None) -> str:
    return "never" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M}"


def took(run: runs.Run, now: datetime) -> str:
    end = run.finished_at or now
    return f"{(end - run.started_at).total_seconds():.1f} s"


def outcome(run: runs.Run) -> str:
    if run.outcome == "running" and not run.held:
        return "running?"  # nobody holds it: the next claim of the job marks it failed
    return run.outcome


def note(run: runs.Run) -> str:
    if run.outcome == "running" and not run.held:
        return runs.INTERRUPTED
    return run.error or run.detail or ""


def table(rows: list[list[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in rows]


def render(statuses: list[JobStatus], now: datetime, catch_up: bool = True) -> str:
    """The status tables: one line per job, then each job's latest runs, newest first."""
    jobs = [["job", "schedule (UTC)", "next due (UTC)", "last success (due time)"]]
    for s in statuses:
        last = minute(s.last_success) + (f"; missed {minute(s.latest_due)}" if s.missed else "")
        jobs.append([s.job.name, s.job.schedule.describe(), minute(s.next_due), last])
    lines = [f"scheduler status at {now:%Y-%m-%d %H:%M:%S} UTC", "", *table(jobs)]
    if any(s.missed for s in statuses):
        lines.append(
            "missed: no successful run for its latest due time; a scheduler starting now runs it once (catch-up)"
            if catch_up
            else "missed: no successful run for its latest due time (catch-up is off: SCHEDULER_CATCH_UP=false)"
        )
    lines += ["", "latest runs (times in UTC):"]
    history = [["job", "run", "due", "started", "took", "outcome", "error or detail"]]
    for s in statuses:
        for run in s.runs:
            started = f"{run.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
            history.append([s.job.name, str(run.id), minute(run.scheduled_for), started, took(run, now), outcome(run), note(run)])
    lines += table(history) if len(history) > 1 else ["no run recorded yet"]
    return "\n".join(lines)
