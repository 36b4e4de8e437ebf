"""Running one job for one due time: claim the slot, run the job's commands as subprocesses (or its
in-process check), record the outcome. A stop (SIGTERM, Ctrl+C) stops the running command and still
records how the run ended; a command that runs past ``SCHEDULER_JOB_TIMEOUT_S`` is stopped too."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TextIO, TypeVar

import psycopg2
import psycopg2.extensions

from core import db, metrics, retry
from core.config import PROJECT_ROOT, Settings
from core.errors import PlatformError, ServiceUnavailable
from scheduler import runs
from scheduler.jobs import Job
from scheduler.schedule import needs_catch_up

logger = logging.getLogger(__name__)
T = TypeVar("T")

# How often a running command is checked for a stop or its timeout.
POLL_S = 0.2
# A command asked to stop (SIGTERM) that has not exited by then is killed: every command's work is
# transactional, so whatever it had not committed is redone by the next run.
KILL_AFTER_S = 10.0
# Claiming or recording waits out a database outage with the platform's backoff (core.retry:
# 0.5 s doubling to 10 s) for at most DB_RETRY_TIMEOUT_S, as the consumers do.
BACKOFF = retry.Backoff(first_s=0.5, max_s=10.0)


@dataclass(frozen=True)
class Result:
    """How a run ended: ``ok``, ``failed`` (with one line of error) or ``skipped``; ``detail`` is
    what an ok run found or why a run was skipped."""

    outcome: str
    error: str | None = None
    detail: str | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class Exited:
    """A finished command: its exit status, its last line, and why it was stopped if it was."""

    returncode: int
    last_line: str | None
    stopped: str | None = None


class _Tail(threading.Thread):
    """Copies a child's output to ours line by line, keeping the last non-empty line."""

    def __init__(self, source: IO[str], sink: TextIO) -> None:
        super().__init__(daemon=True)
        self.source, self.sink = source, sink
        self.last: str | None = None

    def run(self) -> None:
        for line in self.source:
            self.sink.write(line)
            self.sink.flush()
            if line.strip():
                self.last = line.strip()


def run_process(argv: list[str], stop: threading.Event, timeout_s: float) -> Exited:
    """Run ``argv`` from the project root in this process's environment, its output passed on;
    stop it (SIGTERM, then SIGKILL after ``KILL_AFTER_S``) when ``stop`` is set or it runs longer
    than ``timeout_s``. The last line is its last line on stderr, or on stdout if it wrote nothing
    there: the commands write one-line errors and summaries designed to hold no personal data."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules, no shell
        argv, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1
    )
    assert process.stdout is not None and process.stderr is not None  # noqa: S101 - both are pipes
    tails = (_Tail(process.stdout, sys.stdout), _Tail(process.stderr, sys.stderr))
    for tail in tails:
        tail.start()
    deadline = time.monotonic() + timeout_s
    stopped: str | None = None
    asked_at = 0.0
    while True:
        try:
            code = process.wait(timeout=POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        if stopped is None and (stop.is_set() or time.monotonic() > deadline):
            stopped = "the scheduler was stopped" if stop.is_set() else f"it ran longer than {timeout_s:g} s"
            process.send_signal(signal.SIGTERM)
            asked_at = time.monotonic()
        elif stopped is not None and time.monotonic() - asked_at > KILL_AFTER_S:
            process.kill()
    for tail in tails:
        tail.join()
    process.stdout.close()  # read to the end by the tails: closed here, not left to the collector
    process.stderr.close()
    return Exited(code, tails[1].last or tails[0].last, stopped)


# The comparison's last line names how many days drift when any do (exit status 1).
COMPARISON = "batch.compare_batch_vs_stream"
_DRIFT_LINE = re.compile(r"drift on (\d+) day")


def drifting_days(exited: Exited) -> int:
    """Days the comparison found drifting: 0 when it agreed (exit 0), else the count its last line
    gives (at least 1)."""
    if exited.returncode == 0:
        return 0
    found = _DRIFT_LINE.search(exited.last_line or "")
    return max(int(found.group(1)), 1) if found else 1


def describe_failure(module: str, exited: Exited) -> str:
    """One line for the record: which command, its exit status, its last line."""
    if exited.stopped is not None:
        what = f"{module} was stopped because {exited.stopped}"
    elif exited.returncode < 0:
        what = f"{module} was killed by {signal.Signals(-exited.returncode).name}"
    else:
        what = f"{module} exited with status {exited.returncode}"
    return what + (f": {exited.last_line}" if exited.last_line else "")


def describe_exception(error: BaseException) -> str:
    """One line on an exception of an in-process check, quoting no data: a platform error's own
    message, a database error's SQLSTATE and primary message, else the exception's type."""
    if isinstance(error, PlatformError):
        return str(error)
    return db.describe_error(error)


class Runner:
    """Runs jobs for the scheduler and for ``run-once``, one at a time, until ``stop`` is set. With
    ``retry`` (the service) a database outage is waited out; without (``run-once``, a person at a
    terminal) it is a one-line error at once."""

    def __init__(
        self, settings: Settings, stop: threading.Event, *, retry: bool = True, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.retry = retry
        self.clock = clock or (lambda: datetime.now(UTC))

    def run_slot(self, job: Job, scheduled_for: datetime) -> Result:
        """Claim ``job`` for ``scheduled_for``, run it and record the outcome; or skip it."""
        if self.stop.is_set():
            return Result("skipped", detail="the scheduler is stopping")
        conn, claim = self._retry(f"{job.name}: claiming its run", lambda: self._claim(job, scheduled_for))
        with closing(conn):
            if claim.skipped:
                logger.info("%s due %s skipped: %s", job.name, scheduled_for.isoformat(), claim.detail)
                return Result("skipped", detail=claim.detail, run_id=claim.run_id)
            logger.info("%s due %s: run %d started", job.name, scheduled_for.isoformat(), claim.run_id)
            started = time.monotonic()
            started_at = time.time()
            try:
                result = self._execute(job, scheduled_for)
            except Exception as e:  # a defect of ours: still recorded, never left running
                logger.exception("%s due %s: run %d broke", job.name, scheduled_for.isoformat(), claim.run_id)
                result = Result("failed", error=f"the scheduler failed: {describe_exception(e)}")
            result = Result(result.outcome, runs.one_line(result.error), runs.one_line(result.detail))
            self._record(conn, claim.run_id, result)
        metrics.record_job_run(job.name, succeeded=result.outcome == "ok", started_at=started_at, finished_at=time.time())
        took = time.monotonic() - started
        if result.outcome == "ok":
            logger.info("%s due %s: run %d ok in %.1f s", job.name, scheduled_for.isoformat(), claim.run_id, took)
        else:
            logger.error("%s due %s: run %d failed: %s", job.name, scheduled_for.isoformat(), claim.run_id, result.error)
        return Result(result.outcome, result.error, result.detail, claim.run_id)

    def run_due(self, job: Job) -> None:
        """What APScheduler calls when ``job`` is due: run it for its latest due time."""
        self._guarded(job, job.schedule.latest_due(self.clock()))

    def catch_up(self, plan: list[tuple[Job, datetime]]) -> None:
        """Run each job once for the due time it missed, in order, until stopped."""
        for job, due in plan:
            if self.stop.is_set():
                return
            logger.info("catch-up: %s was due %s without a successful run since; running it now", job.name, due.isoformat())
            self._guarded(job, due)

    def plan_catch_up(self, jobs: list[Job]) -> list[tuple[Job, datetime]]:
        """The jobs whose latest due time has passed without a successful run, with that time."""
        now = self.clock()
        database = self.settings.database
        with runs.connection(database) as conn, conn, conn.cursor() as cur:
            runs.mark_abandoned(cur)
            last = runs.last_successes(cur)
        return [
            (job, job.schedule.latest_due(now))
            for job in jobs
            if needs_catch_up(last.get(job.name), job.schedule.latest_due(now))
        ]

    # -- the parts ---------------------------------------------------------------------------------

    def _guarded(self, job: Job, scheduled_for: datetime) -> None:
        """run_slot in the scheduler's thread: an expected failure (the database gone past the
        retry budget) is one line in the log, and the service goes on to the next due time."""
        try:
            self.run_slot(job, scheduled_for)
        except PlatformError as e:
            logger.error("%s due %s not run: %s", job.name, scheduled_for.isoformat(), e)

    def _claim(self, job: Job, scheduled_for: datetime) -> tuple[psycopg2.extensions.connection, runs.Claim]:
        """A connection as the scheduler's login and the claim made on it (which holds the run's
        lock while the connection lives)."""
        conn = db.connect(self.settings.database, application_name=f"scheduler:{job.name}", role=db.SCHEDULER_ROLE)
        try:
            return conn, runs.claim(conn, job.name, scheduled_for)
        except BaseException:
            conn.close()
            raise

    def _execute(self, job: Job, scheduled_for: datetime) -> Result:
        if job.check is not None:
            try:
                return Result("ok", detail=job.check(self.settings))
            except (PlatformError, psycopg2.Error) as e:
                return Result("failed", error=describe_exception(e))
        for step in job.steps:
            if self.stop.is_set():
                return Result("failed", error=f"not run: {step.module}, as the scheduler was stopped")
            argv = step.argv(scheduled_for)
            logger.info("%s: python -m %s", job.name, " ".join(argv))
            exited = run_process([sys.executable, "-m", *argv], self.stop, self.settings.scheduler.job_timeout_s)
            if step.module == COMPARISON and exited.stopped is None and exited.returncode in {0, 1}:
                metrics.record_reconciliation(drifting_days(exited))
            if exited.returncode != 0 or exited.stopped is not None:
                return Result("failed", error=describe_failure(step.module, exited))
        return Result("ok")

    def _record(self, conn: psycopg2.extensions.connection, run_id: int, result: Result) -> None:
        """The outcome on the claiming connection; if that one was lost, on a new one (the lock
        went with the lost connection)."""
        try:
            runs.finish(conn, run_id, result.outcome, result.error, result.detail)
        except psycopg2.Error as e:
            if not db.is_transient(e):
                raise
            logger.warning("run %d: lost the database while it ran (%s); recording its outcome again", run_id, e)

            def again() -> None:
                database = self.settings.database
                with (
                    runs.connection(database) as fresh,
                    fresh,
                    fresh.cursor() as cur,
                ):
                    runs.record(cur, run_id, result.outcome, result.error, result.detail)

            self._retry(f"run {run_id}: recording its outcome", again)

    def _retry(self, what: str, attempt: Callable[[], T]) -> T:
        """``attempt`` until it succeeds, retrying a transient database failure with backoff for at
        most DB_RETRY_TIMEOUT_S (or until stopped); ServiceUnavailable past that."""
        policy = retry.RetryPolicy(
            transient=lambda e: isinstance(e, ServiceUnavailable) or db.is_transient(e),
            backoff=BACKOFF,
            budget_s=self.settings.database.retry_timeout_s,
            max_retries=None if self.retry else 0,
        )

        def log(r: retry.Retry) -> None:
            logger.warning("%s: %s; trying again in %.1f s", what, runs.one_line(str(r.error)), r.delay_s)

        try:
            return retry.call(attempt, policy, stop=self.stop, on_retry=log)
        except retry.RetryError as e:
            if isinstance(e.error, ServiceUnavailable) and not self.retry:
                raise e.error from e.error.__cause__
            raise ServiceUnavailable(f"{what}: {runs.one_line(str(e.error)) or type(e.error).__name__}") from e.error
