"""Recompute ``metrics_batch_daily`` for one UTC day from ``events_raw``, in SQL.

The day's rows are replaced in one transaction, so a reader sees either the old or the new
figures, never a mix; re-running gives the same result.
"""

from __future__ import annotations

import argparse
from datetime import date

import psycopg2.extensions

from core import cli, db
from core.config import Settings

RECOMPUTE_SQL = """
INSERT INTO metrics_batch_daily (event_date, event_type, event_count, revenue)
SELECT event_date, event_type, count(*), coalesce(sum(amount), 0)
FROM events_raw
WHERE event_date = %(day)s
GROUP BY event_date, event_type
"""


def recompute_day(conn: psycopg2.extensions.connection, day: date) -> list[tuple[str, int, str]]:
    """Replace the batch metrics of ``day``; return (event_type, count, revenue) rows."""
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM metrics_batch_daily WHERE event_date = %(day)s", {"day": day})
        cur.execute(RECOMPUTE_SQL, {"day": day})
        cur.execute(
            "SELECT event_type, event_count, revenue FROM metrics_batch_daily WHERE event_date = %s ORDER BY event_type",
            (day,),
        )
        return [(kind, int(count), str(revenue)) for kind, count, revenue in cur.fetchall()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch.batch_metrics",
        description="Recompute metrics_batch_daily (event count and revenue per event type) for one UTC day from events_raw.",
    )
    cli.add_day_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        day = args.day or cli.today_utc()
        with db.connection(settings.database, application_name="batch_metrics") as conn:
            rows = recompute_day(conn, day)
        print(f"batch metrics for {day}:")
        if not rows:
            print("  no events stored for this day")
        for kind, count, revenue in rows:
            print(f"  {kind:<12} {count:>12,} events  {revenue:>16} EUR")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
