"""The batch layer's computation: a UTC day's metrics recomputed from ``events_raw`` in SQL.

Used by ``python -m batch.batch_metrics`` (with the analyses' per-person-day summaries:
``close_day``), by the repair in batch.reconcile and by the bench.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import psycopg2.extensions
from psycopg2.extras import execute_values

from analytics import summaries
from core import db, locks

# A plain SELECT, not INSERT ... SELECT: PostgreSQL never runs a data-modifying statement in
# parallel, and on a large day the parallel scan is most of the speed (measured: 1.6x slower).
AGGREGATE_SQL = """
SELECT event_type, count(*), coalesce(sum(amount), 0)
FROM events_raw
WHERE event_date = %(day)s
GROUP BY event_type
ORDER BY event_type
"""


def recompute_day_in(cur: db.Cursor, day: date) -> list[tuple[str, int, str]]:
    """Replace the batch metrics of ``day`` inside the caller's transaction (READ COMMITTED). A day
    with no raw event stored keeps the metrics it has: its events are past retention
    (gdpr.retention drops raw events, never the aggregates), and an erasure never removes an
    event. The day is held where it is until the transaction ends (core.locks.hold_event_days): a
    day moving out of the default partition under the read once read as empty."""
    locks.hold_event_days(cur)
    cur.execute(AGGREGATE_SQL, {"day": day})
    rows = [(kind, int(count), revenue) for kind, count, revenue in cur.fetchall()]
    if not rows:
        return []
    cur.execute("DELETE FROM metrics_batch_daily WHERE event_date = %(day)s", {"day": day})
    if rows:
        execute_values(
            cur,
            "INSERT INTO metrics_batch_daily (event_date, event_type, total_events, total_amount) VALUES %s",
            [(day, kind, count, revenue) for kind, count, revenue in rows],
        )
    return [(kind, count, f"{revenue:.2f}") for kind, count, revenue in rows]


def recompute_day(conn: psycopg2.extensions.connection, day: date) -> list[tuple[str, int, str]]:
    """Replace the batch metrics of ``day`` in a transaction of its own; return (type, count, revenue)."""
    with conn, conn.cursor() as cur:
        return recompute_day_in(cur, day)


def close_day(conn: psycopg2.extensions.connection, day: date, *, funnel_window_s: int) -> list[tuple[str, int, str]]:
    """What the batch job does for a day, in one transaction: its metrics recomputed, and the
    per-person-day summaries of the analyses (analytics.summaries) rebuilt with the funnel's
    window, so the two never disagree about a day. A day with no raw event stored keeps both."""
    with conn, conn.cursor() as cur:
        rows = recompute_day_in(cur, day)
        if rows:
            summaries.build_day(cur, day, funnel_window_s=funnel_window_s)
        return rows


# A transaction stamps its events with its start (ingested_at = now()) and may commit later: each
# run looks again this far before the previous run's start. A day seen twice is recomputed twice,
# which gives the same figures. Ten minutes covers DB_STATEMENT_TIMEOUT_MS many times over.
LOOK_BACK = timedelta(minutes=10)


def changed_days(cur: db.Cursor, today: date) -> tuple[datetime | None, datetime, list[date]]:
    """The closed days (before ``today``) that received events since the last ``--changed`` run
    (every closed day on the first run), the time looked from, and this run's start (the
    database's clock, which stamps ingested_at)."""
    cur.execute("SELECT max(started_at), now() FROM batch_runs")
    row = cur.fetchone()
    last, started = (row[0], row[1]) if row else (None, datetime.now().astimezone())
    looked_from = None if last is None else last - LOOK_BACK
    if looked_from is None:
        cur.execute("SELECT DISTINCT event_date FROM events_raw WHERE event_date < %s ORDER BY 1", (today,))
    else:
        cur.execute(
            "SELECT DISTINCT event_date FROM events_raw WHERE ingested_at >= %s AND event_date < %s ORDER BY 1",
            (looked_from, today),
        )
    return looked_from, started, [day for (day,) in cur.fetchall()]


def record_run(cur: db.Cursor, started_at: datetime, looked_from: datetime | None, days: list[date]) -> None:
    cur.execute(
        "INSERT INTO batch_runs (started_at, looked_from, days) VALUES (%s, %s, %s::date[])", (started_at, looked_from, days)
    )
