"""Compare batch and streaming daily metrics for one UTC day, per event type.

Exit status 0 when they agree exactly (counts and revenue to the cent), 1 on any drift, so the
command can gate a pipeline.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import psycopg2.extensions

from core import cli, db
from core.config import Settings
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


def compare_day(conn: psycopg2.extensions.connection, day: date) -> list[Comparison]:
    """One row per known event type, zero where a side has no row."""
    with conn, conn.cursor() as cur:
        cur.execute(COMPARE_SQL, {"types": list(EVENT_TYPES), "day": day})
        return [Comparison(k, int(bc), Decimal(br), int(sc), Decimal(sr)) for k, bc, br, sc, sr in cur.fetchall()]


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch.compare_batch_vs_stream",
        description="Compare metrics_batch_daily with metrics_streaming_daily for one UTC day. "
        "Exit status 0 when they agree exactly, 1 on any difference.",
    )
    cli.add_day_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        day = args.day or cli.today_utc()
        with db.connection(settings.database, application_name="compare_batch_vs_stream") as conn:
            rows = compare_day(conn, day)
        print(f"batch vs streaming for {day}")
        print(render_table(rows))
        drift = [r for r in rows if not r.agrees]
        if drift:
            print(f"DRIFT in {len(drift)} event type(s): {', '.join(r.event_type for r in drift)}")
            return 1
        print("OK: batch and streaming agree exactly")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
