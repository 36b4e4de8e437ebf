"""The scheduler on the real stack: every run recorded in scheduler_runs as the scheduler's own login;
a job's command logs in as its own component; a failure is one line; two claims of one job for one
due time run it once; a job that missed its due time runs when the scheduler starts; SIGTERM stops
the running command and still records how the run ended; a run whose process died is marked failed
by the next claim, which then takes its slot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from core import db
from core.config import Settings, load_settings
from scheduler import runs
from scheduler.jobs import jobs
from scheduler.runs import INTERRUPTED, claim
from tests import stacks
from tests.helpers import (
    PROJECT_ROOT,
    consume_all,
    expected_metrics,
    known_events,
    metrics_table,
    produce_events,
    query,
    run_command,
    wait_until,
)

pytestmark = pytest.mark.integration

DUE = "2026-11-23T03:00:00+00:00"


def recorded(settings: Settings, job: str | None = None) -> list[dict[str, Any]]:
    """The runs in scheduler_runs (of ``job``), oldest first."""
    rows = query(
        settings,
        "SELECT id, job, scheduled_for, started_at, finished_at, outcome, error, detail FROM scheduler_runs"
        " WHERE %(job)s::text IS NULL OR job = %(job)s ORDER BY id",
        {"job": job},
    )
    names = ("id", "job", "scheduled_for", "started_at", "finished_at", "outcome", "error", "detail")
    return [dict(zip(names, row, strict=True)) for row in rows]


def start_scheduler(log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m scheduler ARGS`` in the background, its output in ``log``."""
    with open(log, "w", encoding="utf-8") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler", *args],
            cwd=PROJECT_ROOT,
            env={**os.environ, **(env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture
def scheduler_processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Schedulers a test starts; any still running at its end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_run_once_of_the_batch_job_records_ok_and_the_metrics_appear(settings: Settings, group: str, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    closed = [today - timedelta(days=2), today - timedelta(days=1)]
    events = known_events(300, seed=16, days=closed)
    produce_events(settings, events)
    consume_all(settings, group, tmp_path)

    result = run_command("scheduler", "run-once", "batch")
    assert result.returncode == 0, result.stderr
    [run] = recorded(settings)
    assert (run["job"], run["outcome"], run["error"]) == ("batch", "ok", None)
    assert run["started_at"] <= run["finished_at"]
    assert f"batch due {run['scheduled_for'].isoformat()}: ok (run {run['id']})" in result.stdout
    # Both commands ran, each as its own login: the batch figures, and the comparison found them equal.
    assert metrics_table(settings, "metrics_batch_daily") == expected_metrics(events)
    assert "OK: agree exactly" in result.stdout
    assert query(settings, "SELECT days FROM batch_runs") == [(closed,)]

    shown = run_command("scheduler", "status")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    batch = next(line for line in lines if line.startswith("batch ") and "daily at 00:15" in line)
    assert batch.endswith(f"{run['scheduled_for']:%Y-%m-%d %H:%M}")
    assert any(line.split()[:2] == ["batch", str(run["id"])] and " ok" in line for line in lines)


def test_the_audit_report_job_seals_the_trail_first_and_fails_on_a_rewritten_one(settings: Settings) -> None:
    """The weekly job checks the audit trail and seals its head (AUDIT_SEAL_KEY) before the
    report: seals are made without anybody remembering to run gdpr.verify_audit, and a trail
    rewritten in the database fails the job instead of being reported on."""
    query(settings, "INSERT INTO privacy_requests (email) VALUES ('jane.doe@example.com')")  # its 'received' entry
    result = run_command("scheduler", "run-once", "gdpr-audit-report")
    assert result.returncode == 0, result.stderr
    assert "audit trail whole" in result.stdout
    [(sealed,)] = query(settings, "SELECT audit_id FROM privacy_audit_seals")
    assert query(settings, "SELECT max(id) FROM privacy_audit_log") == [(sealed,)]

    # The owner rewrites the sealed row with the triggers off: the next run fails before its report.
    query(
        settings,
        "GRANT UPDATE ON privacy_audit_log TO CURRENT_USER; ALTER TABLE privacy_audit_log DISABLE TRIGGER USER;"
        " UPDATE privacy_audit_log SET actor = 'dpo:mallory' WHERE id = %s;"
        " ALTER TABLE privacy_audit_log ENABLE TRIGGER USER; REVOKE UPDATE ON privacy_audit_log FROM CURRENT_USER",
        (sealed,),
    )
    result = run_command("scheduler", "run-once", "gdpr-audit-report")
    assert result.returncode == 1
    [_, run] = recorded(settings)
    assert (run["job"], run["outcome"]) == ("gdpr-audit-report", "failed")
    assert run["error"].startswith("gdpr.verify_audit exited with status 1")


def test_a_failing_job_is_recorded_failed_with_one_line_naming_the_command_and_its_error(settings: Settings) -> None:
    if stacks.chosen() == "existing":
        pytest.skip("this server may not check passwords of host connections (trust)")
    # An invalid setting of the report alone: its login's password.
    result = run_command("scheduler", "run-once", "daily-report", env={"DB_PASSWORD_REPORTS": "not-the-password-4711"})
    assert result.returncode == 1
    [run] = recorded(settings)
    assert (run["job"], run["outcome"], run["detail"]) == ("daily-report", "failed", None)
    error = run["error"]
    assert error.startswith("reports.generate_daily_report exited with status 2: error: PostgreSQL at ")
    assert "refused login 'login_reports'" in error and "DB_PASSWORD_REPORTS" in error
    assert "\n" not in error and "not-the-password-4711" not in error
    assert f"daily-report due {run['scheduled_for'].isoformat()}: failed (run {run['id']}): {error}" in result.stderr


def test_two_run_once_of_one_job_for_one_due_time_run_it_once(settings: Settings, tmp_path: Path) -> None:
    both = [start_scheduler(tmp_path / f"once-{n}.log", "run-once", "retention", "--scheduled-for", DUE) for n in (1, 2)]
    codes = sorted(process.wait(timeout=120) for process in both)
    assert codes == [0, 3], [(tmp_path / f"once-{n}.log").read_text() for n in (1, 2)]
    ran, skipped = sorted(recorded(settings, "retention"), key=lambda r: r["outcome"])
    assert (ran["outcome"], skipped["outcome"]) == ("ok", "skipped")
    assert ran["scheduled_for"] == skipped["scheduled_for"] == datetime.fromisoformat(DUE)
    assert skipped["detail"] in (f"run {ran['id']} is running it (due {DUE})", f"run {ran['id']} already ran it (due {DUE})")
    # Retention ran once: one record per kind of data.
    assert query(settings, "SELECT count(*) = count(DISTINCT kind) FROM retention_runs") == [(True,)]
    # Later, a third try of that due time skips as well: the slot has run.
    assert run_command("scheduler", "run-once", "retention", "--scheduled-for", DUE).returncode == 3


def test_a_claim_while_another_runs_skips_and_a_failed_slot_may_run_again(settings: Settings) -> None:
    due = datetime.fromisoformat(DUE)
    first = db.connect(settings.database, role=db.SCHEDULER_ROLE)
    second = db.connect(settings.database, role=db.SCHEDULER_ROLE)
    try:
        mine = claim(first, "retention", due)
        theirs = claim(second, "retention", due)
        assert not mine.skipped and theirs.skipped and theirs.holder == mine.run_id
        assert theirs.detail == f"run {mine.run_id} is running it (due {DUE})"
        runs.finish(first, mine.run_id, "failed", "gdpr.retention exited with status 2: error: ...", None)
        again = claim(second, "retention", due)  # catch-up retries a failed due time
        assert not again.skipped
        runs.finish(second, again.run_id, "ok", None, None)
    finally:
        first.close()
        second.close()
    assert [(r["id"], r["outcome"]) for r in recorded(settings)] == [
        (mine.run_id, "failed"),
        (theirs.run_id, "skipped"),
        (again.run_id, "ok"),
    ]


def record_success(settings: Settings, job: str, scheduled_for: datetime) -> None:
    """A successful run of ``job`` for ``scheduled_for``, as an earlier scheduler recorded it."""
    query(
        settings,
        "INSERT INTO scheduler_runs (job, scheduled_for, started_at, finished_at, outcome) VALUES (%s, %s, %s, %s, 'ok')",
        (job, scheduled_for, scheduled_for, scheduled_for + timedelta(seconds=1)),
    )


def quiet_schedule(now: datetime) -> dict[str, str]:
    """Settings that put every daily and weekly job half a day away, so none comes due during a test."""
    away = now + timedelta(hours=12)
    at = f"{away:%H:%M}"
    return {
        "SCHEDULER_BATCH_AT": at,
        "SCHEDULER_DAILY_REPORT_AT": at,
        "SCHEDULER_RETENTION_AT": at,
        "SCHEDULER_ERASURE_UPKEEP_AT": at,
        "SCHEDULER_AUDIT_REPORT_AT": f"{away:%a} {at}".lower(),
    }


def test_a_job_that_missed_its_due_time_runs_when_the_scheduler_starts(
    settings: Settings, tmp_path: Path, scheduler_processes: list[subprocess.Popen[str]]
) -> None:
    now = datetime.now(UTC)
    env = quiet_schedule(now)
    table = jobs(load_settings({**os.environ, **env}).scheduler)
    for job in table.values():
        if job.name != "retention":
            record_success(settings, job.name, now)  # all up to date but retention,
    retention_due = table["retention"].schedule.latest_due(now)
    record_success(settings, "retention", retention_due - timedelta(days=1))  # whose last success is older

    scheduler = start_scheduler(tmp_path / "scheduler.log", env=env)
    scheduler_processes.append(scheduler)

    def caught_up() -> bool:
        return any(r["scheduled_for"] == retention_due and r["outcome"] != "running" for r in recorded(settings, "retention"))

    wait_until(caught_up, timeout=120, what="the missed retention run")
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=60) == 0
    log = (tmp_path / "scheduler.log").read_text()
    [run] = [r for r in recorded(settings, "retention") if r["scheduled_for"] == retention_due]
    assert run["outcome"] == "ok", log
    assert f"catch-up: retention was due {retention_due.isoformat()}" in log
    # Nothing else was behind, so nothing else ran (the hourly check may have come due meanwhile).
    others = {r["job"] for r in recorded(settings) if r["started_at"] > now and r["job"] != "privacy-deadlines"}
    assert others == {"retention"}
    assert "scheduler stopped" in log


def test_with_catch_up_off_a_missed_due_time_waits_for_the_next_one(
    settings: Settings, tmp_path: Path, scheduler_processes: list[subprocess.Popen[str]]
) -> None:
    now = datetime.now(UTC)
    env = {**quiet_schedule(now), "SCHEDULER_CATCH_UP": "false"}
    log = tmp_path / "scheduler.log"
    scheduler = start_scheduler(log, env=env)
    scheduler_processes.append(scheduler)
    wait_until(lambda: "retention: daily at" in log.read_text(), timeout=60, what="the scheduler to list its jobs")
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=60) == 0
    assert "catch-up is off (SCHEDULER_CATCH_UP=false)" in log.read_text()
    assert [r for r in recorded(settings) if r["job"] != "privacy-deadlines"] == []


def test_the_deadline_check_warns_with_counts_and_ids_only(settings: Settings) -> None:
    query(
        settings,
        "INSERT INTO privacy_requests (email) VALUES ('late@example.org'), ('soon@example.org'), ('later@example.org'),"
        " ('done@example.org')",
    )
    query(settings, "UPDATE privacy_requests SET due_at = now() - interval '2 days' WHERE email = 'late@example.org'")
    query(settings, "UPDATE privacy_requests SET due_at = now() + interval '3 days' WHERE email = 'soon@example.org'")
    query(
        settings,
        "UPDATE privacy_requests SET status = 'completed', due_at = now() - interval '9 days' WHERE email = 'done@example.org'",
    )
    ids = dict(query(settings, "SELECT email, id FROM privacy_requests"))
    result = run_command("scheduler", "run-once", "privacy-deadlines")
    assert result.returncode == 0, result.stderr
    summary = f"privacy requests: 1 overdue (ids {ids['late@example.org']}); 1 due within 7 days (ids {ids['soon@example.org']})"
    [run] = recorded(settings)
    assert (run["outcome"], run["detail"]) == ("ok", summary)
    assert f"WARNING scheduler.deadlines: {summary}" in result.stderr
    assert "@example.org" not in result.stdout + result.stderr


@pytest.fixture
def batch_runs_locked(settings: Settings) -> Iterator[psycopg2.extensions.connection]:
    """batch_runs locked by an open transaction: the batch command waits on its first query."""
    conn = db.connect(settings.database)
    with conn.cursor() as cur:
        cur.execute("LOCK TABLE batch_runs IN ACCESS EXCLUSIVE MODE")
    yield conn
    conn.rollback()
    conn.close()


def batch_command_waits(settings: Settings) -> bool:
    """Somebody waits for batch_runs (pg_locks shows every session's locks to every login)."""
    return bool(query(settings, "SELECT 1 FROM pg_locks WHERE relation = 'batch_runs'::regclass AND NOT granted"))


def test_sigterm_stops_the_running_command_and_records_the_run(
    settings: Settings, tmp_path: Path, batch_runs_locked: psycopg2.extensions.connection
) -> None:
    log = tmp_path / "once.log"
    process = start_scheduler(log, "run-once", "batch", "--scheduled-for", DUE)
    wait_until(lambda: batch_command_waits(settings), timeout=60, what="the batch command to wait on its lock")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 1, log.read_text()
    [run] = recorded(settings)
    assert run["outcome"] == "failed" and run["finished_at"] is not None
    assert run["error"] == "batch.batch_metrics was stopped because the scheduler was stopped"


def test_a_run_whose_process_died_is_marked_failed_and_its_due_time_runs_again(
    settings: Settings, tmp_path: Path, batch_runs_locked: psycopg2.extensions.connection
) -> None:
    process = start_scheduler(tmp_path / "killed.log", "run-once", "batch", "--scheduled-for", DUE)
    wait_until(lambda: batch_command_waits(settings), timeout=60, what="the batch command to wait on its lock")
    process.kill()  # no bookkeeping: the row stays 'running', and its lock goes with the connection
    process.wait(timeout=30)
    [abandoned] = recorded(settings)
    assert abandoned["outcome"] == "running"
    wait_until(lambda: "running?" in run_command("scheduler", "status").stdout, timeout=30, what="status to see nobody holds it")
    batch_runs_locked.rollback()  # the orphaned command finishes by itself
    wait_until(lambda: not batch_command_waits(settings), timeout=30, what="the orphaned command to go on")

    result = run_command("scheduler", "run-once", "batch", "--scheduled-for", DUE)
    assert result.returncode == 0, result.stderr
    first, second = recorded(settings)
    assert (first["id"], first["outcome"], first["error"]) == (abandoned["id"], "failed", INTERRUPTED)
    assert (second["outcome"], second["scheduled_for"]) == ("ok", datetime.fromisoformat(DUE))
