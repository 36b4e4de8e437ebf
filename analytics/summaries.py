"""The per-person-day summaries (sql/037) and their rollups per person and week and per person
(sql/041) the analyses read: built by the batch job as each day closes, in the transaction that
recomputes the day's metrics (batch.metrics.close_day; the build rolls the day's people up),
re-keyed by an erasure (gdpr.erasure), dropped with their raw days by retention (gdpr.retention)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from psycopg2 import sql

from core import db, locks


def build_day(cur: db.Cursor, day: date, *, funnel_window_s: int) -> int:
    """Rebuild ``day``'s summaries from events_raw inside the caller's transaction, with the
    funnel's conversion window; return the people summarised. The erasure lock is held shared
    until the transaction ends, as an ingest batch holds it: an erasure waits for the build, or
    the build reads the events it re-keyed, never a mix."""
    locks.take(cur, locks.ERASURE)
    cur.execute("SELECT analytics_build_person_days(%s, %s)", (day, funnel_window_s))
    row = cur.fetchone()
    return 0 if row is None else int(row[0])


@dataclass(frozen=True)
class Coverage:
    """The days summarised: the first and the last, how many, and the funnel windows they were
    built with (seconds -> the days built with it)."""

    first: date | None
    last: date | None
    days: int
    windows: dict[int, list[date]]


def coverage(cur: db.Cursor, first: date | None = None, last: date | None = None) -> Coverage:
    """Which days (between ``first`` and ``last`` when given) have summaries, and with which window."""
    cur.execute(
        "SELECT event_date, funnel_window_s FROM analytics_person_days_built"
        " WHERE (%(first)s::date IS NULL OR event_date >= %(first)s) AND (%(last)s::date IS NULL OR event_date <= %(last)s)"
        " ORDER BY event_date",
        {"first": first, "last": last},
    )
    rows = cur.fetchall()
    windows: dict[int, list[date]] = {}
    for day, window in rows:
        windows.setdefault(int(window), []).append(day)
    return Coverage(rows[0][0] if rows else None, rows[-1][0] if rows else None, len(rows), windows)


def rekey(cur: db.Cursor, olds: list[str], news: list[str]) -> int:
    """Move erased people's summary rows, and their rollups, to their new random ids (the ids their
    events moved to), inside the erasure's transaction; return the summary rows moved."""
    if not olds:
        return 0
    moved: list[int] = []
    for table in ("analytics_person_days", "analytics_person_weeks", "analytics_person_totals"):
        cur.execute(
            sql.SQL(
                "UPDATE {} AS s SET user_id = m.new FROM unnest(%s::uuid[], %s::uuid[]) AS m (old, new) WHERE s.user_id = m.old"
            ).format(sql.Identifier(table)),
            (olds, news),
        )
        moved.append(cur.rowcount)
    return moved[0]


def remove_before(cur: db.Cursor, cutoff: date) -> int:
    """Drop the summaries of the days before ``cutoff`` (retention drops their raw events), and
    their rollups (the cutoff's week recomputed from the days left); return the summary rows dropped."""
    cur.execute("DELETE FROM analytics_person_days WHERE event_date < %s", (cutoff,))
    removed = cur.rowcount
    cur.execute("DELETE FROM analytics_person_days_built WHERE event_date < %s", (cutoff,))
    cur.execute("SELECT analytics_rollups_drop_before(%s)", (cutoff,))
    return removed


def count_before(cur: db.Cursor, cutoff: date) -> int:
    """The summary rows of days before ``cutoff`` (a dry run of retention)."""
    cur.execute("SELECT count(*) FROM analytics_person_days WHERE event_date < %s", (cutoff,))
    row = cur.fetchone()
    return 0 if row is None else int(row[0])
