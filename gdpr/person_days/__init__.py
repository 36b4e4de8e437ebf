"""The days each person's events are on (sql/027), which an erasure reads instead of the history.

``python -m gdpr.person_days`` builds the lists of the closed days that have none yet, and of the
closed days that received events after theirs was built (noted by a trigger on events_raw), in
one pass over those days' events: each night that is yesterday, and the first run after the
migration (or after a history was loaded) is every day. It is a nightly job of the scheduler;
until a day is built an erasure simply searches that day in full, as it searched every day
before, so a late or missed run costs time, never an event left behind.

An erasure (``gdpr.process_privacy_requests``) asks ``coverage`` which days the lists cover
exactly, looks each person up in their own days among those, searches the others in full, and
deletes the person's list. Each build first takes the days retention dropped out of the lists
(the scheduler runs it after retention).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg2.errors
import psycopg2.extensions

from core import db, locks, partitions
from core.config import DatabaseSettings

logger = logging.getLogger(__name__)

# A day is built once it has been over this long: a transaction that wrote rows of the day just
# before midnight (not noted as a change, the day being open) has committed by then.
CLOSED_AFTER = timedelta(minutes=10)
# The longest a build waits for another build to end (the lock locks.PERSON_DAYS_BUILD, held on a
# connection of its own for the whole build, so that two never update the same people at once);
# then it fails with lock_not_available and the next night's run builds (kept under half the
# statement timeout).
BUILD_LOCK_WAIT_MS = 60_000
# A build merges its lists into person_days this many people per transaction (about a second
# each), holding the erasure lock shared: the most an erasure waits for a build.
MERGE_CHUNK = 50_000
# The read's snapshot taken again when a day moved out of events_raw's default partition just
# before it (sql/047): a move waits for the transaction that holds the days, so a retry meets none.
SNAPSHOT_ATTEMPTS = 3
# The session's buffers for the staged lists (about 250 bytes a person).
TEMP_BUFFERS = "1GB"


@dataclass(frozen=True)
class Coverage:
    """Which days an erasure may read from the lists, and which it must search in full."""

    covered: frozenset[date]  # built, with no event written since
    searched: tuple[date, ...]  # every other day that may hold events


def days_with_events(cur: db.Cursor) -> set[date]:
    """The days that may hold events: those with a partition, and those in the default one."""
    days = partitions.partitioned_days(cur)
    cur.execute("SELECT DISTINCT event_date FROM events_raw_default")
    days.update(day for (day,) in cur.fetchall())
    return days


def coverage(cur: db.Cursor) -> Coverage:
    """The days the lists cover exactly now. Read inside an erasure's transaction, which holds
    the erasure lock: no ingest batch and no merge of a build is under way (a build's read may
    be, but its days are marked built only in its last step, under the lock)."""
    cur.execute("SELECT event_date FROM person_days_built")
    built = {day for (day,) in cur.fetchall()}
    cur.execute("SELECT DISTINCT event_date FROM person_days_changes")
    changed = {day for (day,) in cur.fetchall()}
    covered = built - changed
    searched = sorted(days_with_events(cur) - covered)
    return Coverage(frozenset(covered), tuple(searched))


def days_of(cur: db.Cursor, user_id: str) -> list[date]:
    """The days that may hold one person's events: their listed days among those the lists
    cover, and every day the lists do not cover. Read under the erasure lock, as ``coverage``."""
    days = coverage(cur)
    cur.execute("SELECT days FROM person_days WHERE user_id = %s", (user_id,))
    row = cur.fetchone()
    listed = [day for day in (row[0] if row else ()) if day in days.covered]
    return sorted({*listed, *days.searched})


def closed_before(now: datetime) -> date:
    """The first day not yet closed long enough to be built at ``now``."""
    return (now.astimezone(UTC) - CLOSED_AFTER).date()


def days_to_build(cur: db.Cursor, now: datetime) -> list[date]:
    """Closed days with events (or a partition) whose list is missing or out of date."""
    cur.execute("SELECT event_date FROM person_days_built")
    built = {day for (day,) in cur.fetchall()}
    cur.execute("SELECT DISTINCT event_date FROM person_days_changes")
    changed = {day for (day,) in cur.fetchall()}
    limit = closed_before(now)
    return sorted(day for day in days_with_events(cur) | changed if day < limit and (day not in built or day in changed))


def build(
    conn: psycopg2.extensions.connection, database: DatabaseSettings, now: datetime | None = None, chunk: int = MERGE_CHUNK
) -> tuple[list[date], int]:
    """Build the lists of the days that need it; return those days and how many people's lists
    changed. ``now`` (the database's clock when not given, the clock the trigger reads) says
    which days are closed.

    The days' events are read in one pass, in one REPEATABLE READ snapshot and without the
    erasure lock (the first build reads the whole history, which takes minutes), into a
    temporary table. The lists are then merged ``chunk`` people per transaction, each holding
    the erasure lock shared as an ingest batch does, so that an erasure waits for one chunk: a
    person erased after the snapshot (their events re-keyed, their ``users_pii`` row anonymised)
    gets no list back. Last, in one transaction, the days are recorded built and the notes the
    snapshot saw are deleted: notes of later writes stay, and their days stay searched."""
    if conn.autocommit:
        raise ValueError("person_days.build needs a connection outside autocommit")
    days: list[date] = []
    people = 0
    with conn.cursor() as cur:
        # The staged lists live in this session's own buffers (8 MB by default, set before the
        # session's first temporary table): at 8 MB each chunk of the merge read them back from
        # the files (20.2 s against 11.4 s for one pass under the lock over 8M events).
        cur.execute("SET temp_buffers = %s", (TEMP_BUFFERS,))
        conn.commit()
        lock = locks.held(
            database,
            locks.PERSON_DAYS_BUILD,
            role=db.GDPR_ROLE,
            application_name="gdpr_person_days",
            wait_ms=locks.wait_ms_for(database, BUILD_LOCK_WAIT_MS),
        )
        try:
            with lock:
                if now is None:
                    cur.execute("SELECT clock_timestamp()")
                    row = cur.fetchone()
                    now = row[0] if row else datetime.now(UTC)
                    conn.commit()
                with _erasure_lock_shared(conn):
                    # After a long pause or a shorter retention, many lists lose days at once.
                    cur.execute("SET LOCAL statement_timeout = 0")
                    people += _forget_dropped_days(cur)
                days, seen = _read_in_snapshot(conn, now)
                if days:
                    people += _merge(conn, chunk)
                    with _erasure_lock_shared(conn):
                        cur.execute(
                            "DELETE FROM person_days_changes AS c"
                            " USING unnest(%s::date[], %s::xid8[]) AS s (event_date, changed_by)"
                            " WHERE c.event_date = s.event_date AND c.changed_by = s.changed_by",
                            ([d for d, _x in seen], [x for _d, x in seen]),
                        )
                        cur.execute(
                            "INSERT INTO person_days_built (event_date) SELECT unnest(%s::date[])"
                            " ON CONFLICT (event_date) DO UPDATE SET built_at = excluded.built_at",
                            (days,),
                        )
        finally:
            # The temporary table would go with the session; a kept connection drops it now.
            _quietly(conn, "DROP TABLE IF EXISTS pg_temp.person_days_staged")
    return days, people


def _read_in_snapshot(conn: psycopg2.extensions.connection, now: datetime) -> tuple[list[date], list[tuple[date, str]]]:
    """The days to build and their lists staged (``_read_days``), in one REPEATABLE READ snapshot
    that holds events_raw's days where they are (sql/047), taken again if a day moved out of the
    default partition just before it."""
    attempt = 1
    while True:
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                locks.hold_event_days(cur)
                days = days_to_build(cur, now)
                return days, (_read_days(cur, days) if days else [])
        except psycopg2.errors.SerializationFailure:
            if attempt >= SNAPSHOT_ATTEMPTS:
                raise
            attempt += 1


def _read_days(cur: db.Cursor, days: list[date]) -> list[tuple[date, str]]:
    """In the build's snapshot: each person's days among ``days``, into the temporary table
    person_days_staged (indexed by person, for the chunks); return the notes of those days this
    snapshot sees (day, writing transaction), which the build may delete."""
    cur.execute("SELECT event_date, changed_by::text FROM person_days_changes WHERE event_date = ANY(%s::date[])", (days,))
    seen = [(day, str(xid)) for day, xid in cur.fetchall()]
    # A first build reads the whole history: longer than an ordinary statement may be.
    cur.execute("SET LOCAL statement_timeout = 0")
    cur.execute("SET LOCAL work_mem = '256MB'")
    cur.execute("DROP TABLE IF EXISTS pg_temp.person_days_staged")
    cur.execute(
        "CREATE TEMPORARY TABLE person_days_staged AS"
        " SELECT user_id, array_agg(DISTINCT event_date ORDER BY event_date) AS days FROM events_raw"
        " WHERE event_date = ANY(%s::date[]) GROUP BY user_id",
        (days,),
    )
    cur.execute("CREATE INDEX ON pg_temp.person_days_staged (user_id)")
    cur.execute("ANALYZE pg_temp.person_days_staged")
    return seen


def _merge(conn: psycopg2.extensions.connection, chunk: int) -> int:
    """Merge person_days_staged into person_days, ``chunk`` people (in user_id order) per
    transaction under the erasure lock; return how many lists changed."""
    changed = 0
    after: str | None = None
    with conn.cursor() as cur:
        while True:
            with _erasure_lock_shared(conn):
                cur.execute(
                    "SELECT user_id::text FROM (SELECT user_id FROM pg_temp.person_days_staged"
                    " WHERE %(after)s::uuid IS NULL OR user_id > %(after)s::uuid ORDER BY user_id LIMIT %(n)s) AS c"
                    " ORDER BY user_id DESC LIMIT 1",
                    {"after": after, "n": chunk},
                )
                row = cur.fetchone()
                last = row[0] if row else None
                if last is None:
                    return changed
                changed += _merge_chunk(cur, after, last)
            after = last


def _merge_chunk(cur: db.Cursor, after: str | None, last: str) -> int:
    """Merge the staged lists of the people after ``after`` up to ``last``; return how many
    changed. A person anonymised since the snapshot (erased) is left out: an erasure deleted
    their list, and re-keyed the events it was read from."""
    cur.execute(
        "INSERT INTO person_days (user_id, days)"
        " SELECT s.user_id, s.days FROM pg_temp.person_days_staged AS s"
        " WHERE (%(after)s::uuid IS NULL OR s.user_id > %(after)s::uuid) AND s.user_id <= %(last)s::uuid"
        "   AND NOT EXISTS (SELECT FROM users_pii AS p WHERE p.user_id = s.user_id AND p.anonymized_at IS NOT NULL)"
        # Most lists just grow at their end (yesterday is the newest day): appended, not sorted.
        " ON CONFLICT (user_id) DO UPDATE SET days = CASE"
        "  WHEN person_days.days[cardinality(person_days.days)] < excluded.days[1] THEN person_days.days || excluded.days"
        "  ELSE person_days_merge(person_days.days, excluded.days) END"
        " WHERE NOT person_days.days @> excluded.days",
        {"after": after, "last": last},
    )
    return int(cur.rowcount)


@contextmanager
def _erasure_lock_shared(conn: psycopg2.extensions.connection) -> Iterator[None]:
    """One transaction with the erasure lock held shared, taken by its first statement: each later
    statement (READ COMMITTED) reads once the lock is held."""
    with conn:
        with conn.cursor() as cur:
            locks.take(cur, locks.ERASURE)
        yield


def _quietly(conn: psycopg2.extensions.connection, statement: str, *params: object) -> None:
    """Clean up after a build (release a session lock, drop the staged lists) in a transaction of
    its own. On a connection already lost the server has done it, and the error that lost it is
    the one to report; a failure here is only logged."""
    if conn.closed:
        return
    try:
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(statement, params)
        conn.commit()
    except psycopg2.Error as e:
        logger.warning("person days: %s failed (%s); the session's end does it", statement, db.describe_error(e))


def _forget_dropped_days(cur: db.Cursor) -> int:
    """The days retention dropped (every day before the oldest that may still hold events: it
    removes the oldest days) leave every list and the record of the builds; return how many
    people's lists changed. A list is sorted, so those days are its first: a person left with
    none goes, the others lose their first day, pass by pass, each pass finding its rows by the
    index on the first day."""
    remaining = days_with_events(cur)
    if not remaining:
        return 0
    oldest = min(remaining)
    cur.execute("DELETE FROM person_days WHERE days[1] < %(d)s AND days[cardinality(days)] < %(d)s", {"d": oldest})
    changed = cur.rowcount
    while True:
        cur.execute("UPDATE person_days SET days = days[2:] WHERE days[1] < %s", (oldest,))
        if not cur.rowcount:
            break
        changed += cur.rowcount
    cur.execute("DELETE FROM person_days_built WHERE event_date < %s", (oldest,))
    cur.execute("DELETE FROM person_days_changes WHERE event_date < %s", (oldest,))
    if changed:
        logger.info("%d people's lists of event days lost the days before %s, which retention dropped", changed, oldest)
    return changed
