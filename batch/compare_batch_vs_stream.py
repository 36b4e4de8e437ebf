"""Compare batch and streaming daily metrics per UTC day and event type; optionally repair.

Exit status 0 when every day agrees (exactly, or within ``--tolerance``), 1 on any drift, so the
command can gate a pipeline. ``--repair`` rewrites the streaming rows of closed days (before
today, UTC) from freshly recomputed batch rows, the batch being the source of truth, and records
every repaired row in ``metrics_repairs``.

A repair is only correct when the streaming consumer has counted exactly the events the raw
consumer stored: it locks both groups' stored offsets (pausing their commits for a moment) and
proceeds only when they are equal on every partition, i.e. when both have caught up.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg2.extensions

from batch.batch_metrics import recompute_day_in
from consumers.store_raw_events import DEFAULT_GROUP as RAW_GROUP
from consumers.streaming_metrics import DEFAULT_GROUP as STREAM_GROUP
from core import cli, db
from core.config import Settings
from core.errors import PlatformError
from core.events import EVENT_TYPES

COMPARE_SQL = """
SELECT t.event_type,
       coalesce(b.event_count, 0), coalesce(b.revenue, 0),
       coalesce(s.event_count, 0), coalesce(s.revenue, 0)
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


def _consumers_in_step(cur: db.Cursor, topic: str, raw_group: str, stream_group: str) -> bool:
    """Lock both groups' offsets (their commits wait) and say whether they are equal."""
    cur.execute(
        "SELECT consumer_group, partition, next_offset FROM consumer_offsets"
        " WHERE topic = %s AND consumer_group IN (%s, %s) ORDER BY consumer_group, partition FOR UPDATE",
        (topic, raw_group, stream_group),
    )
    offsets: dict[str, dict[int, int]] = {raw_group: {}, stream_group: {}}
    for group, partition, offset in cur.fetchall():
        offsets[group][partition] = offset
    return offsets[raw_group] == offsets[stream_group]


def repair_day(
    conn: psycopg2.extensions.connection,
    day: date,
    topic: str,
    *,
    raw_group: str = RAW_GROUP,
    stream_group: str = STREAM_GROUP,
    wait_s: float = 30.0,
) -> list[Comparison]:
    """Recompute the batch rows of ``day`` and copy them over the streaming rows, recording each
    changed row in metrics_repairs; return what was changed. Raise RepairRefused when the two
    consumer groups do not reach the same offsets within ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        with conn, conn.cursor() as cur:
            if _consumers_in_step(cur, topic, raw_group, stream_group):
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
                    "INSERT INTO metrics_streaming_daily (event_date, event_type, event_count, revenue)"
                    " SELECT event_date, event_type, event_count, revenue FROM metrics_batch_daily WHERE event_date = %s",
                    (day,),
                )
                return changed
        if time.monotonic() > deadline:
            raise RepairRefused(
                f"cannot repair {day}: consumer groups {raw_group!r} and {stream_group!r} have not stored the same "
                f"offsets of {topic!r} within {wait_s:.0f} s; let them catch up (or pause the generator) and retry"
            )
        time.sleep(0.2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch.compare_batch_vs_stream",
        description="Compare metrics_batch_daily with metrics_streaming_daily per UTC day and event type. "
        "Exit status 0 when they agree (within --tolerance), 1 on any drift.",
    )
    cli.add_day_range_arguments(parser)
    parser.add_argument(
        "--tolerance",
        type=Decimal,
        default=Decimal(0),
        help="allowed relative difference, e.g. 0.001 for 0.1%% (default: 0, exact to the event and the cent)",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="rewrite the streaming rows of drifting closed days (before today, UTC) from recomputed batch rows",
    )
    parser.add_argument(
        "--repair-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long --repair waits for both consumer groups to reach the same offsets (default: 30)",
    )
    parser.add_argument("--raw-group", default=RAW_GROUP, help=f"raw-events consumer group (default: {RAW_GROUP})")
    parser.add_argument("--streaming-group", default=STREAM_GROUP, help=f"streaming consumer group (default: {STREAM_GROUP})")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    days = cli.days_from_arguments(parser, args)
    if args.tolerance < 0:
        parser.error("--tolerance must be 0 or more")

    def execute(settings: Settings) -> int:
        drifting: list[date] = []
        today = cli.today_utc()
        with db.connection(settings.database, application_name="compare_batch_vs_stream") as conn:
            for day in days:
                rows = compare_day(conn, day)
                bad = [r for r in rows if not r.within(args.tolerance)]
                if len(days) > 1 and not any(r.batch_count or r.stream_count for r in rows):
                    continue  # a range skips empty days
                print(f"\nbatch vs streaming for {day}")
                print(render_table(rows))
                if not bad:
                    print("OK: agree" + (" exactly" if all(r.agrees for r in rows) else f" within {args.tolerance}"))
                    continue
                print(f"DRIFT in {len(bad)} event type(s): {', '.join(r.event_type for r in bad)}")
                if args.repair and day < today:
                    changed = repair_day(
                        conn,
                        day,
                        settings.kafka.topic,
                        raw_group=args.raw_group,
                        stream_group=args.streaming_group,
                        wait_s=args.repair_wait,
                    )
                    print(f"REPAIRED: {len(changed)} streaming row(s) of {day} rewritten from batch (see metrics_repairs)")
                    continue
                if args.repair:
                    print(f"not repaired: {day} is not closed yet (today, UTC); streaming may still be catching up")
                drifting.append(day)
        if drifting:
            print(f"\ndrift on {len(drifting)} day(s): {', '.join(d.isoformat() for d in drifting)}")
            return 1
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
