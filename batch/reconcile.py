"""Batch against streaming: the comparison per UTC day and event type, and the repair of drift.

The library behind ``python -m batch.compare_batch_vs_stream`` and the reports' reconciliation
section. A repair is only correct when the streaming consumer has counted exactly the events
the raw consumer stored: it locks both groups' stored offsets (pausing their commits for a
moment, core.progress) and proceeds only when they are equal on every partition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg2.extensions

from batch.metrics import recompute_day_in
from core import db, progress
from core.errors import PlatformError
from core.events import EVENT_TYPES

COMPARE_SQL = """
SELECT t.event_type,
       coalesce(b.total_events, 0), coalesce(b.total_amount, 0),
       coalesce(s.total_events, 0), coalesce(s.total_amount, 0)
FROM unnest(%(types)s::text[]) AS t (event_type)
LEFT JOIN metrics_batch_daily b ON b.event_type = t.event_type AND b.event_date = %(day)s
LEFT JOIN metrics_streaming_daily s ON s.event_type = t.event_type AND s.event_date = %(day)s
ORDER BY t.event_type
"""


@dataclass(frozen=True)
class Comparison:
    """Batch against streaming for one event type of one day."""

    event_type: str
    batch_count: int
    batch_revenue: Decimal
    stream_count: int
    stream_revenue: Decimal

    @property
    def count_diff(self) -> int:
        return self.stream_count - self.batch_count

    @property
    def revenue_diff(self) -> Decimal:
        return self.stream_revenue - self.batch_revenue

    @property
    def agrees(self) -> bool:
        return self.count_diff == 0 and self.revenue_diff == 0

    def within(self, tolerance: Decimal) -> bool:
        """Both differences at most ``tolerance`` (a fraction) of the larger side."""
        count_ok = abs(self.count_diff) <= tolerance * max(self.batch_count, self.stream_count)
        revenue_ok = abs(self.revenue_diff) <= tolerance * max(self.batch_revenue, self.stream_revenue)
        return count_ok and revenue_ok


class RepairRefused(PlatformError):
    """The consumers are not in step, so the streaming rows cannot be rewritten safely."""


def compare_in(cur: db.Cursor, day: date) -> list[Comparison]:
    """One row per known event type, zero where a side has no row, in the caller's transaction."""
    cur.execute(COMPARE_SQL, {"types": list(EVENT_TYPES), "day": day})
    return [Comparison(k, int(bc), Decimal(br), int(sc), Decimal(sr)) for k, bc, br, sc, sr in cur.fetchall()]


def compare_day(conn: psycopg2.extensions.connection, day: date) -> list[Comparison]:
    """compare_in in a transaction of its own."""
    with conn, conn.cursor() as cur:
        return compare_in(cur, day)


def render_table(rows: list[Comparison]) -> str:
    """A fixed-width table for the console."""
    lines = [
        f"{'event_type':<12} {'batch':>10} {'streaming':>10} {'diff':>8} {'batch EUR':>14} {'streaming EUR':>14} {'diff EUR':>10}"
    ]
    for r in rows:
        lines.append(
            f"{r.event_type:<12} {r.batch_count:>10,} {r.stream_count:>10,} {r.count_diff:>+8,} "
            f"{r.batch_revenue:>14,.2f} {r.stream_revenue:>14,.2f} {r.revenue_diff:>+10,.2f}"
        )
    return "\n".join(lines)


def repair_day(
    conn: psycopg2.extensions.connection,
    day: date,
    topic: str,
    *,
    raw_group: str,
    stream_group: str,
    wait_s: float = 30.0,
) -> list[Comparison]:
    """Recompute the batch rows of ``day`` and copy them over the streaming rows, recording each
    changed row in metrics_repairs; return what was changed. Raise RepairRefused when the two
    consumer groups do not reach the same offsets within ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        with conn, conn.cursor() as cur:
            if progress.groups_in_step(cur, topic, (raw_group, stream_group)):
                recompute_day_in(cur, day)
                changed = [r for r in compare_in(cur, day) if not r.agrees]
                for r in changed:
                    cur.execute(
                        "INSERT INTO metrics_repairs (event_date, event_type, streaming_count, streaming_revenue,"
                        " batch_count, batch_revenue) VALUES (%s, %s, %s, %s, %s, %s)",
                        (day, r.event_type, r.stream_count, r.stream_revenue, r.batch_count, r.batch_revenue),
                    )
                cur.execute("DELETE FROM metrics_streaming_daily WHERE event_date = %s", (day,))
                cur.execute(
                    "INSERT INTO metrics_streaming_daily (event_date, event_type, total_events, total_amount)"
                    " SELECT event_date, event_type, total_events, total_amount FROM metrics_batch_daily WHERE event_date = %s",
                    (day,),
                )
                return changed
        if time.monotonic() > deadline:
            raise RepairRefused(
                f"cannot repair {day}: consumer groups {raw_group!r} and {stream_group!r} have not stored the same "
                f"offsets of {topic!r} within {wait_s:.0f} s; let them catch up (or pause the generator) and retry"
            )
        time.sleep(0.2)
