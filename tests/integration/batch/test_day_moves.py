"""A day moved out of events_raw's default partition while it is read (sql/047): the batch never
reads it as empty, a snapshot reader keeps the day whole, and the nightly move leaves a day being
read for the next night. Interleaved with a move held open on a connection of its own and polled
lock waits, never sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg2.errors
import psycopg2.extensions
import pytest

from batch import metrics
from core import db, locks, partitions
from core.config import Settings
from core.events import Event
from tests.helpers import expected_metrics, known_events, query, wait_until

pytestmark = pytest.mark.integration

# Days no partition is ever created ahead for, one per test (partitions outlive the tables' reset).
BATCH_DAY = date(2006, 4, 5)
SNAPSHOT_DAY = date(2006, 4, 6)
BUSY_DAY, QUIET_DAY = date(2006, 4, 7), date(2006, 4, 8)
ERASED_DAY = date(2006, 4, 9)


def store_in_default(settings: Settings, events: list[Event]) -> None:
    """The events as late arrivals for days without a partition: they land in the default one."""
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        for e in events:
            cur.execute(
                "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, metadata)"
                " VALUES (%s, %s, %s, %s, %s, %s, '{}')",
                (e.event_id, e.user_id, e.event_type, e.event_timestamp, e.event_date, e.amount),
            )
    days = {e.event_date for e in events}
    held = query(settings, "SELECT DISTINCT event_date FROM events_raw_default WHERE event_date = ANY(%s)", (list(days),))
    assert {d for (d,) in held} == days


@contextmanager
def move_held_open(settings: Settings, day: date) -> Iterator[psycopg2.extensions.connection]:
    """The move of ``day`` into a partition of its own, done as the retention job does it and not
    yet committed: the caller commits it when the reader is where it wants it."""
    with db.connection(settings.database, application_name="test-day-move", role=db.RETENTION_ROLE) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT events_raw_create_partitions(%s, %s)", (day, day))
            row = cur.fetchone()
            assert row is not None and row[0] == 1
        yield conn


def waiting_for_a_lock(settings: Settings, application_name: str) -> bool:
    rows = query(
        settings,
        "SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE NOT l.granted AND a.application_name = %s",
        (application_name,),
    )
    return bool(rows[0][0])


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except Exception as e:  # handed to the test, which asserts on it
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def figures(rows: list[tuple[str, int, str]], day: date) -> dict[tuple[date, str], tuple[int, Decimal]]:
    return {(day, kind): (count, Decimal(revenue)) for kind, count, revenue in rows}


def test_the_batch_never_reads_a_day_as_empty_while_it_moves_out_of_the_default_partition(settings: Settings) -> None:
    events = known_events(300, seed=47, days=[BATCH_DAY])
    store_in_default(settings, events)
    with (
        move_held_open(settings, BATCH_DAY) as mover,
        db.connection(settings.database, application_name="test-batch-reader", role=db.BATCH_ROLE) as reader,
    ):
        # The batch starts its day while the move is under way, and waits for it.
        thread, out = in_thread(lambda: metrics.close_day(reader, BATCH_DAY, funnel_window_s=settings.analytics_funnel_window_s))
        wait_until(lambda: waiting_for_a_lock(settings, "test-batch-reader"), what="the batch to wait for the move")
        mover.commit()
        thread.join(timeout=60)
    assert "error" not in out, out.get("error")
    assert figures(out["result"], BATCH_DAY) == expected_metrics(events)
    assert query(settings, "SELECT count(*) FROM events_raw_default WHERE event_date = %s", (BATCH_DAY,)) == [(0,)]
    built = query(settings, "SELECT count(DISTINCT user_id) FROM analytics_person_days WHERE event_date = %s", (BATCH_DAY,))
    assert built == [(len({e.user_id for e in events}),)]


def day_count(cur: db.Cursor, day: date) -> int:
    cur.execute("SELECT count(*) FROM events_raw WHERE event_date = %s", (day,))
    row = cur.fetchone()
    return -1 if row is None else int(row[0])


def test_a_snapshot_taken_before_a_move_is_told_to_start_again_and_then_reads_the_day_whole(settings: Settings) -> None:
    events = known_events(120, seed=48, days=[SNAPSHOT_DAY])
    store_in_default(settings, events)
    with db.connection(settings.database, application_name="test-snapshot-reader", role=db.ANALYTICS_ROLE) as reader:
        with move_held_open(settings, SNAPSHOT_DAY) as mover, reader.cursor() as cur:
            # A report's transaction: its snapshot is taken as it asks for the days, before it waits.
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            thread, out = in_thread(lambda: locks.hold_event_days(cur))
            wait_until(lambda: waiting_for_a_lock(settings, "test-snapshot-reader"), what="the report to wait for the move")
            mover.commit()
            thread.join(timeout=60)
        assert isinstance(out.get("error"), psycopg2.errors.SerializationFailure), out
        reader.rollback()
        with reader, reader.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            locks.hold_event_days(cur)
            assert day_count(cur, SNAPSHOT_DAY) == len(events)


def test_the_nightly_move_leaves_the_days_being_read_for_the_next_night(settings: Settings) -> None:
    events = known_events(200, seed=49, days=[BUSY_DAY, QUIET_DAY])
    store_in_default(settings, events)
    per_day = {day: sum(1 for e in events if e.event_date == day) for day in (BUSY_DAY, QUIET_DAY)}
    reader = db.connection(settings.database, application_name="test-long-batch", role=db.BATCH_ROLE)
    with reader as conn, conn, conn.cursor() as cur:
        locks.hold_event_days(cur)
        assert day_count(cur, BUSY_DAY) == per_day[BUSY_DAY]
        with db.connection(settings.database, role=db.RETENTION_ROLE) as mover, mover, mover.cursor() as moving:
            # Each day's move waits its 2 s for the lock and gives up; nothing fails.
            assert partitions.partition_default_days(moving, BUSY_DAY) == 0
        assert day_count(cur, BUSY_DAY) == per_day[BUSY_DAY]
    held = query(settings, "SELECT event_date, count(*) FROM events_raw_default GROUP BY 1 ORDER BY 1")
    assert held == sorted(per_day.items())
    with db.connection(settings.database, role=db.RETENTION_ROLE) as mover, mover, mover.cursor() as moving:
        assert partitions.partition_default_days(moving, BUSY_DAY) == 2
    assert query(settings, "SELECT count(*) FROM events_raw_default") == [(0,)]
    moved = query(
        settings,
        "SELECT event_date, count(*) FROM events_raw WHERE event_date = ANY(%s) GROUP BY 1 ORDER BY 1",
        ([BUSY_DAY, QUIET_DAY],),
    )
    assert moved == sorted(per_day.items())


def test_a_move_waits_for_an_erasure_holding_the_day_without_a_deadlock(settings: Settings) -> None:
    """An erasure holds the days shared, then re-keys a person's rows. A move of that day that
    deleted the rows first and then waited for the day lock deadlocked with it (one side got
    40P01); the move takes the lock before it touches a row, so it simply waits."""
    events = known_events(60, seed=50, days=[ERASED_DAY])
    store_in_default(settings, events)
    person = events[0].user_id
    theirs = sum(1 for e in events if e.user_id == person)
    eraser = db.connection(settings.database, application_name="test-erasure", role=db.GDPR_ROLE)
    mover = db.connection(settings.database, application_name="test-day-mover", role=db.RETENTION_ROLE)
    with eraser as erasing, erasing.cursor() as cur, mover as conn:
        locks.hold_event_days(cur)

        def move() -> int:
            with conn, conn.cursor() as moving:
                return partitions.create_partitions(moving, ERASED_DAY, ERASED_DAY)

        thread, out = in_thread(move)
        wait_until(lambda: waiting_for_a_lock(settings, "test-day-mover"), what="the move to wait for the erasure")
        # The re-keying touches the day's rows while the move waits: no row of them is locked.
        cur.execute("UPDATE events_raw SET metadata = '{}' WHERE user_id = %s AND event_date = %s", (person, ERASED_DAY))
        assert cur.rowcount == theirs
        erasing.commit()
        thread.join(timeout=60)
    assert "error" not in out, out.get("error")
    assert out["result"] == 1
    assert query(settings, "SELECT count(*) FROM events_raw_default WHERE event_date = %s", (ERASED_DAY,)) == [(0,)]
    assert query(settings, "SELECT count(*) FROM events_raw WHERE event_date = %s", (ERASED_DAY,)) == [(len(events),)]
