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

import argparse
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg2.extensions

from core import cli, db, partitions
from core.config import Settings

logger = logging.getLogger(__name__)

# A day is built once it has been over this long: a transaction that wrote rows of the day just
# before midnight (not noted as a change, the day being open) has committed by then.
CLOSED_AFTER = timedelta(minutes=10)
# Builds take this lock, so that two never update the same people at once.
BUILD_LOCK_ID = 715_027


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
    the erasure lock: no ingest batch and no build is under way."""
    cur.execute("SELECT event_date FROM person_days_built")
    built = {day for (day,) in cur.fetchall()}
    cur.execute("SELECT DISTINCT event_date FROM person_days_changes")
    changed = {day for (day,) in cur.fetchall()}
    covered = built - changed
    searched = sorted(days_with_events(cur) - covered)
    return Coverage(frozenset(covered), tuple(searched))


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


def build(conn: psycopg2.extensions.connection, now: datetime | None = None) -> tuple[list[date], int]:
    """Build the lists of the days that need it, in one transaction; return those days and how
    many people's lists changed. The transaction reads one snapshot (REPEATABLE READ): the notes
    of later writes, which it does not see, stay for the next build."""
    now = now or datetime.now(UTC)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (BUILD_LOCK_ID,))
        # Shared, like an ingest batch: no erasure deletes a list while this one is written.
        cur.execute("SELECT pg_advisory_lock_shared(%s)", (db.ERASURE_LOCK_ID,))
        conn.commit()
        try:
            conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ)
            with conn:
                # A first build reads the whole history: longer than any statement should be.
                cur.execute("SET LOCAL statement_timeout = 0")
                cur.execute("SET LOCAL work_mem = '256MB'")
                _forget_dropped_days(cur)
                days = days_to_build(cur, now)
                people = 0
                if days:
                    cur.execute(
                        "INSERT INTO person_days (user_id, days)"
                        " SELECT user_id, array_agg(DISTINCT event_date ORDER BY event_date) FROM events_raw"
                        " WHERE event_date = ANY(%(days)s::date[]) GROUP BY user_id"
                        " ON CONFLICT (user_id) DO UPDATE SET days = person_days_merge(person_days.days, excluded.days)"
                        " WHERE NOT person_days.days @> excluded.days",
                        {"days": days},
                    )
                    people = cur.rowcount
                    cur.execute("DELETE FROM person_days_changes WHERE event_date = ANY(%s::date[])", (days,))
                    cur.execute(
                        "INSERT INTO person_days_built (event_date) SELECT unnest(%s::date[])"
                        " ON CONFLICT (event_date) DO UPDATE SET built_at = excluded.built_at",
                        (days,),
                    )
        finally:
            conn.rollback()
            conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_DEFAULT)
            cur.execute("SELECT pg_advisory_unlock_shared(%s), pg_advisory_unlock(%s)", (db.ERASURE_LOCK_ID, BUILD_LOCK_ID))
            conn.commit()
    return days, people


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


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m gdpr.person_days",
        description="Build the lists of the days each person's events are on, for the closed days that have none or "
        "received events since (an erasure then reads those days only); a nightly job of the scheduler.",
    )


def main(argv: list[str] | None = None) -> None:
    build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        started = time.perf_counter()
        with db.connection(settings.database, application_name="gdpr_person_days", role=db.GDPR_ROLE) as conn:
            days, people = build(conn)
        if days:
            span = f"{days[0]}" if len(days) == 1 else f"{len(days)} days, {days[0]} to {days[-1]}"
            print(f"person days built for {span}: {people:,} people's lists changed in {time.perf_counter() - started:.1f} s")
        else:
            print("person days: every closed day is built")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
