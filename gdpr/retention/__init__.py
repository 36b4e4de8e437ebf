"""Storage limitation (GDPR Art. 5(1)(e)): data older than its configured retention goes.

``python -m gdpr.retention`` removes, per kind of data (``--only`` picks some):

* ``raw_events``: the events of days before RETENTION_DAYS ago. ``events_raw`` is partitioned
  by day (sql/021): whole partitions are dropped, and the old rows of the default partition
  (late events of days without a partition) deleted day by day, at most 50,000 per transaction,
  with progress, as are all old rows of a table that is not partitioned. The daily metrics, aggregates, stay;
  the analyses' per-person-day summaries of those days (analytics_person_days) go with them.
* ``dead_letters``: dead letters received before DEAD_LETTER_RETENTION_DAYS ago.
* ``access_exports``: exports past their download period (the GDPR processor's own sweep,
  ``gdpr.housekeeping``), and files in ``REPORTS_DIR/access/`` that no request points to, last
  written before ACCESS_EXPORT_DAYS ago.
* ``privacy_requests``: the residue of requests processed before PRIVACY_REQUEST_RETENTION_DAYS
  ago (outcome, export and secret columns, corrections, any email left); id, type, status,
  channel, dates and the keyed HMAC of the email (the proof) stay. Expired DPO sessions and the
  codes of requests no longer waiting for them go too.
* ``reports``: business and GDPR audit report files whose day (in their name) is before
  REPORT_RETENTION_DAYS ago.

Older than N days means before the UTC day N days before today: with 30, on 2026-05-31 what is
dated before 2026-05-01 goes. The audit trail is never touched: it holds no personal data, and it
is the proof. Each kind's result is recorded in ``retention_runs`` (a dry run too, marked so),
which the GDPR audit report shows. It runs as its own login, ``login_retention`` (sql/018).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from analytics import summaries
from core import cli, db, locks, partitions
from core.config import Settings
from core.errors import PlatformError
from gdpr import housekeeping, requests
from gdpr.audit import AuditLog
from gdpr.exports import export_file, remove_export

logger = logging.getLogger(__name__)

# Rows deleted per transaction: each transaction's locks, WAL and undo stay bounded, and an
# interrupted run keeps what it committed (recorded; the rest goes next time).
CHUNK_ROWS = 50_000
# Processed requests cleared per transaction (a few thousand a year are usual).
REQUEST_BATCH = 10_000
# The actor of the audit entries retention writes (exports deleted).
ACTOR = "retention"
RAW_EVENTS_TABLE = "events_raw"
# Report files: <report>_<day>[_<chart>].<format>, and what a crash left half-written (.partial).
REPORT_FILE = re.compile(
    r"(?:business_report|gdpr_audit_report)_(\d{4}-\d{2}-\d{2})(?:_[A-Za-z0-9_-]+)?\.(?:md|html|json|png)(?:\.partial)?"
)

# The kinds of data, in the order a run handles them, and what summaries call them.
KINDS: dict[str, str] = {
    "raw_events": "raw events",
    "dead_letters": "dead letters",
    "access_exports": "access exports",
    "privacy_requests": "processed privacy requests",
    "reports": "report files",
}
# Every kind recorded in retention_runs: privacy_requests also records these two.
LABELS: dict[str, str] = {**KINDS, "dpo_sessions": "expired DPO sessions", "verification_codes": "used verification codes"}


class RetentionFailed(PlatformError):
    """A kind of data could not be (fully) removed; what was removed before is recorded."""


@dataclass
class Removal:
    """What one kind of data lost (or would lose, in a dry run) in one run. Filled in as the work
    commits, so an interrupted run still records what it removed."""

    kind: str
    cutoff: date
    dry_run: bool
    unit: str = "rows"
    verb: str = "removed"
    removed: int = 0
    first: date | None = None
    last: date | None = None
    note: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add(self, count: int, first: date | None = None, last: date | None = None) -> None:
        """Count ``count`` more, dated ``first`` to ``last`` (days of what was removed)."""
        self.removed += count
        if count and first is not None:
            self.first = first if self.first is None else min(self.first, first)
        if count and last is not None:
            self.last = last if self.last is None else max(self.last, last)

    def summary(self) -> str:
        """One line: "raw events: 1,204,332 rows of 2025-01-01..2025-10-22 removed (cutoff 2025-10-23)"."""
        if not self.removed:
            return f"{LABELS[self.kind]}: nothing to remove (cutoff {self.cutoff})"
        unit = self.unit.removesuffix("s") if self.removed == 1 else self.unit
        span = ""
        if self.first is not None and self.last is not None:
            span = f" of {self.first}" if self.first == self.last else f" of {self.first}..{self.last}"
        verb = f"would be {self.verb}" if self.dry_run else self.verb
        tail = f"cutoff {self.cutoff}" + (f"; {self.note}" if self.note else "")
        return f"{LABELS[self.kind]}: {self.removed:,} {unit}{span} {verb} ({tail})"


def cutoff_day(today: date, days: int) -> date:
    """The first day kept: what is dated before it goes."""
    return today - timedelta(days=days)


def midnight(day: date) -> datetime:
    """The start of a UTC day, for the columns that hold a time rather than a day."""
    return datetime.combine(day, time(), UTC)


def report_day(name: str) -> date | None:
    """The day in a report file's name (``business_report_2026-05-04_revenue.png``), or None for
    any other file."""
    match = REPORT_FILE.fullmatch(name)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


@dataclass
class Run:
    """One kind's work in a run: where, as of which day, for real or not, and what it started."""

    conn: psycopg2.extensions.connection
    settings: Settings
    today: date
    dry_run: bool
    events_table: str = RAW_EVENTS_TABLE
    started: list[Removal] = field(default_factory=list)

    def removal(self, kind: str, days: int, unit: str = "rows", verb: str = "removed") -> Removal:
        removal = Removal(kind, cutoff_day(self.today, days), self.dry_run, unit, verb)
        self.started.append(removal)
        return removal


def _one(cur: db.Cursor) -> tuple[int, date | None, date | None]:
    """(count, first day, last day) of a ``SELECT count(*), min(...), max(...)``."""
    row = cur.fetchone()
    return (0, None, None) if row is None else (int(row[0]), row[1], row[2])


def _count(cur: db.Cursor) -> int:
    """The number a ``SELECT count(*)`` answered."""
    row = cur.fetchone()
    return 0 if row is None else int(row[0])


# -- raw events -------------------------------------------------------------------------------


def is_partitioned(conn: psycopg2.extensions.connection, table: str) -> bool:
    """Whether ``table`` (a name, schema-qualified or not) is a partitioned table."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))", (table,))
        row = cur.fetchone()
    return bool(row and row[0])


def remove_raw_events(run: Run, chunk_rows: int = CHUNK_ROWS) -> Removal:
    """Events of days before the cutoff: whole daily partitions when ``run.events_table`` is
    partitioned, otherwise rows deleted day by day, ``chunk_rows`` per transaction."""
    removal = run.removal("raw_events", run.settings.retention.raw_event_days)
    if not is_partitioned(run.conn, run.events_table):
        _delete_events(run.conn, removal, run.events_table, chunk_rows)
        return removal
    in_partitions = _drop_partitions(run.conn, removal, run.events_table)
    if run.events_table == RAW_EVENTS_TABLE and not removal.dry_run:
        # The daily run also keeps the coming week's partitions created, as the sink does.
        with run.conn, run.conn.cursor() as cur:
            partitions.create_partitions(cur, *partitions.ahead(cli.today_utc()))
    # What is left before the cutoff is in the default partition: late events of days that had
    # no partition of their own. A dry run still sees the partitions' rows: they are not counted twice.
    _delete_events(run.conn, removal, run.events_table, chunk_rows, counted=in_partitions if removal.dry_run else 0)
    if run.events_table == RAW_EVENTS_TABLE:
        _remove_person_day_summaries(run.conn, removal)
    if run.events_table == RAW_EVENTS_TABLE and not removal.dry_run:
        _remove_erased_digests(run.conn, removal.cutoff)
        _partition_default_days(run.conn, removal.cutoff)
    return removal


def _remove_person_day_summaries(conn: psycopg2.extensions.connection, removal: Removal) -> None:
    """The analyses' per-person-day summaries (sql/037) of the days before the cutoff: per-person
    data derived from the raw events, it goes with them (the daily metrics, aggregates, stay)."""
    with conn, conn.cursor() as cur:
        count = summaries.count_before(cur, removal.cutoff) if removal.dry_run else summaries.remove_before(cur, removal.cutoff)
    if count:
        note = f"{count:,} per-person-day summary rows {'would go' if removal.dry_run else 'removed'} with them"
        removal.note = f"{removal.note}; {note}" if removal.note else note
        logger.info(
            "%s per-person-day summary rows of days before %s", "counted" if removal.dry_run else "removed", removal.cutoff
        )


def _remove_erased_digests(conn: psycopg2.extensions.connection, cutoff: date) -> None:
    """The digests of erased events' former ids (sql/034) for days before the cutoff: they guard
    events_raw against a re-sent copy of an erased event, and those days are gone from it now."""
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM erased_event_digests WHERE event_date < %s", (cutoff,))
        if cur.rowcount:
            logger.info("removed %d digests of erased events before %s", cur.rowcount, cutoff)


def _partition_default_days(conn: psycopg2.extensions.connection, cutoff: date) -> None:
    """The days still in the default partition (late events beyond what a sink's batch may
    partition, PARTITIONS_PER_BATCH) get partitions of their own, their rows moved in. A lock not
    granted is said and left for the next night: the rows are stored either way."""
    try:
        with conn, conn.cursor() as cur:
            created = partitions.partition_default_days(cur, cutoff)
    except psycopg2.Error as e:
        logger.warning("the days in the default partition of events_raw keep waiting (%s)", db.describe_error(e))
        return
    if created:
        logger.info("%d days moved out of the default partition of events_raw into partitions of their own", created)


def _drop_partitions(conn: psycopg2.extensions.connection, removal: Removal, table: str) -> int:
    """The owner's function (sql/018) drops the partitions that hold only days before the cutoff:
    one per transaction (each holds the table's exclusive lock only for its own drop). Return
    the rows they held."""
    query = "SELECT partition_name, first_day, last_day, row_count FROM retention_drop_event_partitions(%s::regclass, %s, %s, %s)"
    rows = 0
    if removal.dry_run:
        with conn, conn.cursor() as cur:
            cur.execute(query, (table, removal.cutoff, True, None))
            found = cur.fetchall()
        for _name, first, last, count in found:
            removal.add(int(count), first, last)
            rows += int(count)
        if found:
            removal.note = f"{len(found)} partitions would be dropped"
        return rows
    progress = cli.Progress("raw events removed")
    dropped = 0
    while True:
        with conn, conn.cursor() as cur:
            cur.execute(query, (table, removal.cutoff, False, 1))
            row = cur.fetchone()
        if row is None:
            break
        name, first, last, count = row
        dropped += 1
        rows += int(count)
        removal.add(int(count), first, last)
        progress.advance(int(count), extra=f"{dropped} partitions, the last {name}")
    if dropped:
        removal.note = f"{dropped} partitions dropped"
    return rows


def _delete_events(conn: psycopg2.extensions.connection, removal: Removal, table: str, chunk_rows: int, counted: int = 0) -> None:
    """Delete day by day, at most ``chunk_rows`` per transaction; ``counted`` of the rows before
    the cutoff were counted already (a dry run's partitions). Each transaction takes the erasure
    lock shared, as an ingest batch does: an erasure re-keying a person's events never
    interleaves with it."""
    name = sql.Identifier(*table.split("."))
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT event_date, count(*) FROM {} WHERE event_date < %s GROUP BY 1 ORDER BY 1").format(name),
            (removal.cutoff,),
        )
        per_day = [(day, int(count)) for day, count in cur.fetchall()]
    total = sum(count for _day, count in per_day) - counted
    if removal.dry_run or total == 0:
        removal.add(total, per_day[0][0] if per_day else None, per_day[-1][0] if per_day else None)
        return
    # A row's ctid is its place in one table, and a partitioned table's partitions repeat each
    # other's: the day, named in both statements, keeps them to the one partition that holds it.
    delete = sql.SQL(
        "DELETE FROM {t} WHERE event_date = %s AND ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE event_date = %s LIMIT %s))"
    ).format(t=name)
    progress = cli.Progress("raw events removed", total=total)
    for day, _count in per_day:
        deleted = chunk_rows
        while deleted == chunk_rows:
            with conn, conn.cursor() as cur:
                locks.take(cur, locks.ERASURE)
                cur.execute(delete, (day, day, chunk_rows))
                deleted = cur.rowcount
            removal.add(deleted, day, day)
            progress.advance(deleted, extra=f"at {day}")


# -- dead letters -----------------------------------------------------------------------------


def remove_dead_letters(run: Run, chunk_rows: int = CHUNK_ROWS) -> Removal:
    """Dead letters received before the cutoff, oldest first (by id), ``chunk_rows`` per transaction."""
    removal = run.removal("dead_letters", run.settings.retention.dead_letter_days)
    since = midnight(removal.cutoff)
    days = "count(*), (min(received_at) AT TIME ZONE 'UTC')::date, (max(received_at) AT TIME ZONE 'UTC')::date"
    if removal.dry_run:
        with run.conn, run.conn.cursor() as cur:
            cur.execute(f"SELECT {days} FROM dead_letter_events WHERE received_at < %s", (since,))  # noqa: S608 - a constant
            removal.add(*_one(cur))
        return removal
    progress = cli.Progress("dead letters removed")
    while True:
        with run.conn, run.conn.cursor() as cur:
            cur.execute(
                "WITH gone AS (DELETE FROM dead_letter_events WHERE id = ANY(ARRAY("  # noqa: S608 - a constant
                " SELECT id FROM dead_letter_events WHERE received_at < %s ORDER BY id LIMIT %s)) RETURNING received_at)"
                f" SELECT {days} FROM gone",
                (since, chunk_rows),
            )
            count, first, last = _one(cur)
        removal.add(count, first, last)
        progress.advance(count)
        if count < chunk_rows:
            return removal


# -- access exports ---------------------------------------------------------------------------


def remove_access_exports(run: Run) -> Removal:
    """Exports past their download period (the processor's sweep, which records export_deleted
    in the audit trail), then files in REPORTS_DIR/access/ no request points to, last written
    before the cutoff (ACCESS_EXPORT_DAYS): left by a crash, or by a request whose row is gone."""
    removal = run.removal("access_exports", run.settings.access_export_days, unit="files")
    with run.conn, run.conn.cursor() as cur:
        if removal.dry_run:
            expired = requests.count_expired_exports(cur)
        else:
            audit = AuditLog(actor=ACTOR)
            expired = housekeeping.delete_expired_exports(cur, audit)
            audit.write(cur)
        pointed_to = {export_file(path).resolve() for path in requests.export_paths(cur)}
    removal.add(expired)
    strays = 0
    directory = run.settings.reports_dir / "access"
    before = midnight(removal.cutoff).timestamp()
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if path.is_symlink() or not path.is_file() or path.resolve() in pointed_to or path.stat().st_mtime >= before:
            continue
        if not removal.dry_run:
            path.unlink(missing_ok=True)
        strays += 1
        removal.add(1)
    removal.note = f"{expired:,} past their download period, {strays:,} that no request points to"
    return removal


# -- processed privacy requests ---------------------------------------------------------------


def remove_request_residue(run: Run) -> Removal:
    """The residue of requests processed before the cutoff; then expired DPO sessions and the
    codes of requests no longer waiting for them."""
    removal = run.removal("privacy_requests", run.settings.retention.privacy_request_days, unit="requests", verb="cleared")
    removal.note = "id, type, status, channel, dates and proof kept"
    since = midnight(removal.cutoff)
    if removal.dry_run:
        with run.conn, run.conn.cursor() as cur:
            removal.add(*requests.residue_days(cur, since))
    else:
        while _clear_requests(run.conn, removal, since) == REQUEST_BATCH:
            pass
    _remove_sessions_and_codes(run)
    return removal


def _clear_requests(conn: psycopg2.extensions.connection, removal: Removal, since: datetime) -> int:
    """Clear one batch; return how many. A request's export file still there is deleted first:
    its path is about to be forgotten."""
    with conn, conn.cursor() as cur:
        rows = requests.lock_residue(cur, since, REQUEST_BATCH)
        for _id, path, _day in rows:
            if path is not None:
                remove_export(path)
        requests.clear_residue(cur, [request_id for request_id, _path, _day in rows])
    if rows:
        days = [day for _id, _path, day in rows]
        removal.add(len(rows), min(days), max(days))
    return len(rows)


def _remove_sessions_and_codes(run: Run) -> None:
    sessions = run.removal("dpo_sessions", 0, unit="sessions")
    codes = run.removal("verification_codes", 0, unit="codes")
    with run.conn, run.conn.cursor() as cur:
        if run.dry_run:
            cur.execute("SELECT count(*) FROM dpo_sessions WHERE expires_at < now()")
            sessions.add(_count(cur))
            codes.add(requests.count_used_codes(cur))
        else:
            cur.execute("DELETE FROM dpo_sessions WHERE expires_at < now()")
            sessions.add(cur.rowcount)
            codes.add(housekeeping.forget_used_codes(cur))


# -- report files -----------------------------------------------------------------------------


def remove_report_files(run: Run) -> Removal:
    """Business and GDPR audit report files (every format, the charts too) of days before the cutoff."""
    removal = run.removal("reports", run.settings.retention.report_days, unit="files")
    directory = run.settings.reports_dir
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        day = report_day(path.name)
        if day is None or day >= removal.cutoff or path.is_symlink() or not path.is_file():
            continue
        if not removal.dry_run:
            path.unlink(missing_ok=True)
        removal.add(1, day, day)
    return removal


# -- a run --------------------------------------------------------------------------------------

REMOVERS: dict[str, Callable[[Run], Removal]] = {
    "raw_events": remove_raw_events,
    "dead_letters": remove_dead_letters,
    "access_exports": remove_access_exports,
    "privacy_requests": remove_request_residue,
    "reports": remove_report_files,
}
# Missing tables, functions, columns or privileges: the schema is older than this code.
SCHEMA_ERRORS = ("42P01", "42883", "42703", "42501")


def record(conn: psycopg2.extensions.connection, removal: Removal) -> None:
    """One row of ``retention_runs``."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO retention_runs (started_at, kind, cutoff, removed, dry_run) VALUES (%s, %s, %s, %s, %s)",
            (removal.started_at, removal.kind, removal.cutoff, removal.removed, removal.dry_run),
        )


def _record_partial(conn: psycopg2.extensions.connection, started: list[Removal]) -> None:
    """After a failure: record what was removed before it (a dry run removed nothing)."""
    for removal in started:
        if removal.removed and not removal.dry_run:
            try:
                record(conn, removal)
            except psycopg2.Error as e:
                logger.warning("%s: %d removed, not recorded: %s", LABELS[removal.kind], removal.removed, db.describe_error(e))


def apply_retention(
    conn: psycopg2.extensions.connection,
    settings: Settings,
    kinds: Sequence[str] = tuple(KINDS),
    *,
    today: date,
    dry_run: bool = False,
    done: Callable[[Removal], None] | None = None,
    events_table: str = RAW_EVENTS_TABLE,
) -> list[Removal]:
    """Remove (or with ``dry_run`` count) each kind of data in ``kinds`` older than its
    retention as of ``today``; record and return what each removed, calling ``done`` with each.
    RetentionFailed when the database or the file system stops a kind (what it removed before
    is recorded)."""
    removals: list[Removal] = []
    for kind in (k for k in KINDS if k in kinds):
        job = Run(conn, settings, today, dry_run, events_table)
        try:
            REMOVERS[kind](job)
        except (psycopg2.Error, OSError) as e:
            _record_partial(conn, job.started)
            raise RetentionFailed(_failure(kind, e)) from e
        except BaseException:
            _record_partial(conn, job.started)
            raise
        for removal in job.started:
            record(conn, removal)
            removals.append(removal)
            if done is not None:
                done(removal)
    return removals


def _failure(kind: str, error: psycopg2.Error | OSError) -> str:
    if isinstance(error, OSError):
        return f"{KINDS[kind]}: {error}; what was removed before is recorded: fix it and run again"
    if error.pgcode in SCHEMA_ERRORS:
        return f"{KINDS[kind]}: {db.describe_error(error)}: apply the migrations (`make up` or `python -m core.db`)"
    return f"{KINDS[kind]}: stopped by the database ({db.describe_error(error)}); what was removed before is recorded: run again"
