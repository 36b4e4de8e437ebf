"""The daily partitions of ``events_raw`` (sql/021): kept ahead of need, created for history.

``events_raw`` has one partition per UTC day and a DEFAULT partition that takes an event whose
day has none, so no event is ever refused for want of one. The raw-events sink keeps today and
the week ahead created, and the late days it receives within the retention, a few per batch
(``DailyPartitions``), the retention job keeps the week ahead each night and gives the days
left in the default partition theirs, and an operator loading history creates its
days first (``python -m core.partitions --from ... --to ...``), so
that the rows go to their day's partition rather than the default one. Creating a day's
partition moves that day's rows out of the default partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import date, timedelta

import psycopg2

from core import cli, db
from core.db import Cursor

logger = logging.getLogger(__name__)

# Today and this many days ahead always have their partition: events may be stamped up to a day
# in the future (core.events.MAX_CLOCK_SKEW), and a week leaves a sink that could not create them
# (its lock timed out behind a long query) days to try again before anything reaches the default.
AHEAD_DAYS = 7
# Yesterday too: a sink started just after midnight still receives yesterday's last events.
BEHIND_DAYS = 1
# After a failed attempt (a lock not granted within the function's 2 s), try again this much later.
RETRY_S = 60.0


def create_partitions(cur: Cursor, first: date, last: date) -> int:
    """Create the partitions of the days from ``first`` to ``last`` that have none (the owner's
    function, sql/021); return how many were created."""
    cur.execute("SELECT events_raw_create_partitions(%s, %s)", (first, last))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def partition_default_days(cur: Cursor, oldest: date) -> int:
    """Give every day from ``oldest`` on that still has rows in the default partition its own
    partition, moving the rows in (the owner's function, sql/029; the nightly retention run calls
    it); return how many partitions were created."""
    cur.execute("SELECT events_raw_partition_default_days(%s)", (oldest,))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def ahead(today: date) -> tuple[date, date]:
    """The days whose partitions must exist on ``today``."""
    return today - timedelta(days=BEHIND_DAYS), today + timedelta(days=AHEAD_DAYS)


def partitioned_days(cur: Cursor) -> set[date]:
    """The days some partition of events_raw covers (bounds read from the catalogue)."""
    cur.execute(
        "SELECT d::date FROM ("
        " SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([0-9-]+)''\\)')::date AS lower_day,"
        "        substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([0-9-]+)''\\)')::date AS upper_day"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'events_raw'::regclass"
        ") AS b, generate_series(b.lower_day, b.upper_day - 1, interval '1 day') AS d"
        " WHERE b.lower_day IS NOT NULL AND b.upper_day IS NOT NULL"
    )
    return {row[0] for row in cur.fetchall()}


def oldest_event_day(cur: Cursor) -> date | None:
    """The first day events_raw holds an event of, without reading the history (``min(event_date)``
    reads every partition). The days that have a partition are tried oldest first, each try
    reading that day's partition up to its first row (retention keeps the oldest ones full, so
    the first try usually answers); then whatever lies before the first day found is read, which
    only the default partition and the empty partitions just tried can hold."""
    first = None
    for day in sorted(partitioned_days(cur)):
        # The day as a constant: the plan holds that day's partition alone.
        cur.execute("SELECT EXISTS (SELECT FROM events_raw WHERE event_date = %s)", (day,))
        row = cur.fetchone()
        if row and row[0]:
            first = day
            break
    if first is None:
        cur.execute("SELECT min(event_date) FROM events_raw")
    else:
        cur.execute("SELECT coalesce(min(event_date), %s) FROM events_raw WHERE event_date < %s", (first, first))
    row = cur.fetchone()
    return row[0] if row else None


def runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as ranges of consecutive days (first, last)."""
    out: list[tuple[date, date]] = []
    for day in days:
        if out and out[-1][1] + timedelta(days=1) == day:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


class DailyPartitions:
    """Gives every day an events_raw partition before its events are written: today and the
    week ahead, and the late days of a batch that are still within the raw-event retention
    (older ones go to the default partition; retention would only drop their partition again).

    It runs inside the caller's transaction, under a savepoint, so that a failure (a lock not
    granted within the function's 2 s, a database not yet migrated to sql/021) leaves the
    caller's transaction going: the events of a day without its partition then go to the
    default partition, and the next attempt comes ``RETRY_S`` later. The days known to have a
    partition are read from the catalogue once and kept: a batch of known days costs nothing.
    """

    def __init__(self, retention_days: int, per_batch: int = 8) -> None:
        self.retention_days = retention_days
        # Past days given a partition per batch at most (PARTITIONS_PER_BATCH), the latest first.
        self.per_batch = per_batch
        self.known: set[date] | None = None
        self.retry_at = 0.0

    def missing(self, days: Iterable[date], today: date) -> list[date]:
        """Of ``days`` and the days ahead, those that need a partition and have none known: every
        day ahead, and of the past days within the retention the ``per_batch`` latest. Each
        partition takes locks and moves rows: one request spread over a year of days must not
        create a year of partitions in one batch. The other days' events go to the default
        partition until the nightly retention run gives their days partitions
        (``partition_default_days``), or a later batch does."""
        first, last = ahead(today)
        known = self.known or set()
        wanted = {first + timedelta(days=n) for n in range((last - first).days + 1)} - known
        oldest = today - timedelta(days=self.retention_days)
        past = sorted({d for d in days if oldest <= d < first} - known, reverse=True)
        wanted.update(d for d in days if first <= d <= last and d not in known)
        return sorted(wanted | set(past[: self.per_batch]))

    def __call__(self, cur: Cursor, days: Iterable[date] = (), today: date | None = None) -> None:
        today = today or cli.today_utc()
        if self.known is not None and not self.missing(days, today):
            return
        if time.monotonic() < self.retry_at:
            return
        cur.execute("SAVEPOINT daily_partitions")
        try:
            if self.known is None:
                self.known = partitioned_days(cur)
            missing = self.missing(days, today)
            created = sum(create_partitions(cur, first, last) for first, last in runs(missing))
        except psycopg2.Error as e:
            cur.execute("ROLLBACK TO SAVEPOINT daily_partitions")
            self.known = None
            self.retry_at = time.monotonic() + RETRY_S
            logger.warning(
                "could not create daily partitions of events_raw (%s); trying again in %.0f s", db.describe_error(e), RETRY_S
            )
            return
        cur.execute("RELEASE SAVEPOINT daily_partitions")
        self.known.update(missing)
        if created:
            logger.info("created %d daily partitions of events_raw, %s to %s", created, missing[0], missing[-1])
