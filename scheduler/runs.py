"""The record of every run in ``scheduler_runs`` (sql/022), and the claim that keeps two schedulers
from running the same job for the same due time.

A run claims its slot, (job, scheduled_for), by inserting a ``running`` row: a unique index lets
only one running or successful row exist per slot, so whoever comes second inserts nothing and
records a ``skipped`` row instead. The claim records the claiming connection's backend (its pid
and start time, sql/032), and the run stays on that connection until it finishes: a ``running``
row whose backend no longer exists as a session of the scheduler's login belongs to a process
that ended without recording its outcome (killed, or its connection lost), and the next claim of
that job marks it failed, which frees its slot for catch-up. (It was a session advisory lock keyed
on the run's id, which any login could take: a foreign holder stalled the claim or kept a dead run
alive.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from core import db
from core.config import DatabaseSettings
from core.errors import ConfigError

OUTCOMES = ("running", "ok", "failed", "skipped")
# What the table keeps of a line (sql/022 refuses more than 1000 characters).
MAX_LINE = 500
INTERRUPTED = "interrupted: the process running it ended before recording an outcome (killed, or it lost the database)"

# A running run is alive while its claiming backend is: the same pid and start time, a session
# of the scheduler's own login (which sees its own sessions' start times), in this database.
_HELD = sql.SQL(
    "EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = r.holder_pid AND a.backend_start = r.holder_started"
    " AND a.usename = session_user AND a.datname = current_database())"
)


@contextmanager
def migrated() -> Iterator[None]:
    """A database without sql/022 as one line saying what to do, not a traceback."""
    try:
        yield
    except psycopg2.errors.UndefinedTable as e:
        raise ConfigError(
            "the table scheduler_runs does not exist: apply the migrations (`make up` or `python -m core.db`)"
        ) from e


@contextmanager
def connection(database: DatabaseSettings, name: str = "scheduler") -> Iterator[psycopg2.extensions.connection]:
    """A connection as the scheduler's own login (sql/022), closed on exit."""
    with migrated(), db.connection(database, application_name=name, role=db.SCHEDULER_ROLE) as conn:
        yield conn


def one_line(text: str | None, limit: int = MAX_LINE) -> str | None:
    """``text`` as one line (whitespace and control characters collapsed), cut at ``limit``."""
    if text is None:
        return None
    line = re.sub(r"[\s\x00-\x1f\x7f]+", " ", text).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a slot: ``run_id`` is this run's row; ``holder`` is None when this
    run holds the slot, else the run that already does (and this run's row is a skip)."""

    run_id: int
    holder: int | None = None
    detail: str | None = None

    @property
    def skipped(self) -> bool:
        return self.holder is not None


@dataclass(frozen=True)
class Run:
    """One row of ``scheduler_runs``; ``held`` says whether a process still holds a running run."""

    id: int
    job: str
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    error: str | None
    detail: str | None
    held: bool


def mark_abandoned(cur: db.Cursor, job: str | None = None) -> int:
    """Mark failed every ``running`` run (of ``job``, or of every job) that no process holds."""
    cur.execute(
        sql.SQL(
            "UPDATE scheduler_runs r SET outcome = 'failed', finished_at = clock_timestamp(), error = %(error)s"
            " WHERE r.outcome = 'running' AND (%(job)s::text IS NULL OR r.job = %(job)s) AND NOT {held}"
        ).format(held=_HELD),
        {"error": INTERRUPTED, "job": job},
    )
    return cur.rowcount


def claim(conn: psycopg2.extensions.connection, job: str, scheduled_for: datetime) -> Claim:
    """Claim (job, scheduled_for) on ``conn``, which then holds the run's lock until ``finish``; or
    record a skip when another run holds the slot or has already run it successfully."""
    with migrated(), conn, conn.cursor() as cur:
        mark_abandoned(cur, job)
        # The row names its backend from the start, so nobody sees it running without a holder.
        cur.execute(
            "INSERT INTO scheduler_runs (job, scheduled_for, outcome, holder_pid, holder_started)"
            " SELECT %s, %s, 'running', a.pid, a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()"
            " ON CONFLICT (job, scheduled_for) WHERE outcome IN ('running', 'ok') DO NOTHING RETURNING id",
            (job, scheduled_for),
        )
        row = cur.fetchone()
        if row is not None:
            return Claim(run_id=int(row[0]))
        cur.execute(
            "SELECT id, outcome FROM scheduler_runs WHERE job = %s AND scheduled_for = %s AND outcome IN ('running', 'ok')",
            (job, scheduled_for),
        )
        holder = cur.fetchone()
        # The holder may have failed since the insert found it: then the slot is free again, and
        # this claim still skips (the next catch-up or run-once takes it).
        holder_id, state = (int(holder[0]), str(holder[1])) if holder is not None else (0, "failed")
        detail = (
            f"run {holder_id} is running it"
            if state == "running"
            else f"run {holder_id} already ran it"
            if state == "ok"
            else "another run held it"
        ) + f" (due {scheduled_for.isoformat()})"
        cur.execute(
            "INSERT INTO scheduler_runs (job, scheduled_for, finished_at, outcome, detail)"
            " VALUES (%s, %s, clock_timestamp(), 'skipped', %s) RETURNING id",
            (job, scheduled_for, detail),
        )
        (skipped,) = cur.fetchone() or (0,)
        return Claim(run_id=int(skipped), holder=holder_id, detail=detail)


def finish(conn: psycopg2.extensions.connection, run_id: int, outcome: str, error: str | None, detail: str | None) -> None:
    """Record the outcome of a claimed run (on the claiming connection)."""
    with conn, conn.cursor() as cur:
        record(cur, run_id, outcome, error, detail)


def record(cur: db.Cursor, run_id: int, outcome: str, error: str | None, detail: str | None) -> None:
    """Set a running run's outcome, one line each for the error and the detail."""
    if outcome not in OUTCOMES[1:]:
        raise ValueError(f"not an outcome of a finished run: {outcome!r}")
    cur.execute(
        "UPDATE scheduler_runs SET finished_at = clock_timestamp(), outcome = %s, error = %s, detail = %s"
        " WHERE id = %s AND outcome = 'running'",
        (outcome, one_line(error), one_line(detail), run_id),
    )


def last_successes(cur: db.Cursor) -> dict[str, datetime]:
    """Each job's latest due time that a run completed successfully."""
    cur.execute("SELECT job, max(scheduled_for) FROM scheduler_runs WHERE outcome = 'ok' GROUP BY job")
    return {str(job): at for job, at in cur.fetchall()}


def latest_runs(cur: db.Cursor, per_job: int) -> list[Run]:
    """The latest ``per_job`` runs of each job, newest first."""
    cur.execute(
        sql.SQL(
            "SELECT id, job, scheduled_for, started_at, finished_at, outcome, error, detail, outcome = 'running' AND {held}"
            " FROM (SELECT *, row_number() OVER (PARTITION BY job ORDER BY started_at DESC, id DESC) AS n FROM scheduler_runs) r"
            " WHERE n <= %(per_job)s ORDER BY job, started_at DESC, id DESC"
        ).format(held=_HELD),
        {"per_job": per_job},
    )
    return [Run(*row) for row in cur.fetchall()]
