"""``python -m scheduler status`` as people read it, and the deadline check's one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.config import SchedulerSettings
from scheduler.deadlines import Deadlines
from scheduler.jobs import jobs
from scheduler.runs import INTERRUPTED, Run
from scheduler.status import JobStatus, render

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
TABLE = jobs(SchedulerSettings())


def run(
    id_: int, job: str, due: str, outcome: str, *, error: str | None = None, detail: str | None = None, held: bool = False
) -> Run:
    scheduled = datetime.fromisoformat(due).replace(tzinfo=UTC)
    started = scheduled + timedelta(seconds=2)
    finished = None if outcome == "running" else started + timedelta(seconds=12.5)
    return Run(id_, job, scheduled, started, finished, outcome, error, detail, held=False)


def status(name: str, last_success: str | None, runs: list[Run]) -> JobStatus:
    job = TABLE[name]
    success = None if last_success is None else datetime.fromisoformat(last_success).replace(tzinfo=UTC)
    return JobStatus(job, job.schedule.next_due(NOW), job.schedule.latest_due(NOW), success, runs)


def test_status_shows_each_jobs_schedule_next_due_time_last_success_and_latest_runs() -> None:
    text = render(
        [
            status(
                "batch",
                "2026-11-23 00:15",
                [
                    run(7, "batch", "2026-11-23 00:15", "ok"),
                    run(5, "batch", "2026-11-22 00:15", "failed", error="batch.compare_batch_vs_stream exited with status 1"),
                ],
            ),
            status("daily-report", "2026-11-22 01:00", [run(6, "daily-report", "2026-11-22 01:00", "ok")]),
            status("privacy-deadlines", None, [run(9, "privacy-deadlines", "2026-11-23 09:05", "running")]),
        ],
        NOW,
    )
    lines = text.splitlines()
    assert lines[0] == "scheduler status at 2026-11-23 10:00:00 UTC"
    header = lines[2]
    assert header.split() == ["job", "schedule", "(UTC)", "next", "due", "(UTC)", "last", "success", "(due", "time)"]
    batch = next(line for line in lines if line.startswith("batch "))
    assert "daily at 00:15" in batch and "2026-11-24 00:15" in batch and batch.endswith("2026-11-23 00:15")
    report = next(line for line in lines if line.startswith("daily-report "))
    assert report.endswith("2026-11-22 01:00; missed 2026-11-23 01:00")
    deadlines = next(line for line in lines if line.startswith("privacy-deadlines "))
    assert deadlines.endswith("never; missed 2026-11-23 09:05")
    assert "a scheduler starting now runs it once (catch-up)" in text
    # The runs, newest first per job, with how long each took and what went wrong.
    runs = lines[lines.index("latest runs (times in UTC):") + 1 :]
    assert runs[0].split()[:3] == ["job", "run", "due"]
    assert runs[1].split()[:9] == ["batch", "7", "2026-11-23", "00:15", "2026-11-23", "00:15:02", "12.5", "s", "ok"]
    assert runs[2].split()[8] == "failed" and runs[2].endswith("batch.compare_batch_vs_stream exited with status 1")
    assert runs[4].split()[8] == "running?" and runs[4].endswith(INTERRUPTED)


def test_status_before_any_run_with_catch_up_off() -> None:
    text = render([status(name, None, []) for name in TABLE], NOW, catch_up=False)
    assert text.endswith("no run recorded yet")
    assert text.count("never; missed") == len(TABLE)
    assert "catch-up is off: SCHEDULER_CATCH_UP=false" in text


def test_the_deadline_check_names_counts_and_request_ids_only() -> None:
    assert Deadlines([], [], 7).summary() == "no open privacy request is overdue or due within 7 days"
    assert Deadlines([4, 9], [11], 7).summary() == "privacy requests: 2 overdue (ids 4, 9); 1 due within 7 days (ids 11)"
    many = Deadlines(list(range(1, 26)), [], 7).summary()
    assert many.startswith("privacy requests: 25 overdue (ids 1, 2, 3,") and many.endswith("19, 20 and 5 more)")
