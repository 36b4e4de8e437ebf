"""Recompute ``metrics_batch_daily`` from ``events_raw``, in SQL, for one UTC day, a range, or
(``--changed``) every closed day that received events since the last such run, late ones
included.

Each day's rows are replaced in one transaction, so a reader sees either the old or the new
figures, never a mix; re-running gives the same result.
"""

from __future__ import annotations

import argparse
from datetime import date

import psycopg2
import psycopg2.extensions

from batch.metrics import changed_days, close_day, record_run
from core import cli, db
from core.config import Settings
from core.errors import InvalidInput


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch.batch_metrics",
        description="Recompute metrics_batch_daily (event count and revenue per event type) and the analyses' "
        "per-person-day summaries (analytics_person_days) from events_raw, "
        "for one UTC day, a range of days, or every closed day that received events since the last --changed run.",
    )
    cli.add_day_range_arguments(parser)
    parser.add_argument(
        "--changed",
        action="store_true",
        help="recompute every closed UTC day (before today) that received events since the last --changed run, "
        "late events included (all closed days the first time); for a scheduler, after midnight",
    )
    return parser


def recompute_days(conn: psycopg2.extensions.connection, days: list[date], funnel_window_s: int) -> list[str]:
    """Recompute each day (its metrics and, in the same transaction, the analyses' per-person-day
    summaries built with ``funnel_window_s``) in a transaction of its own and print its figures; return the days
    PostgreSQL refused, each with its reason. One refused day (its totals out of range, a
    timeout) does not hold up the others: it is said in one line and looked at again next run."""
    progress = cli.Progress("days", total=len(days))
    failed: list[str] = []
    for day in days:
        try:
            rows = close_day(conn, day, funnel_window_s=funnel_window_s)
        except psycopg2.Error as e:
            failed.append(f"{day} ({db.describe_error(e)})")
            print(f"batch metrics for {day}: not recomputed, PostgreSQL refused it ({db.describe_error(e)})")
            continue
        print(f"batch metrics for {day}:")
        if not rows:
            print("  no events stored for this day (batch metrics it has are kept: its events are past retention)")
        for kind, count, revenue in rows:
            print(f"  {kind:<12} {count:>12,} events  {revenue:>16} EUR")
        if len(days) > 1:
            progress.advance(1)
    return failed


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.changed and (args.day or args.from_day or args.to_day):
        parser.error("--changed chooses the days itself: give no DAY or --from/--to with it")
    chosen = [] if args.changed else cli.days_from_arguments(parser, args)

    def execute(settings: Settings) -> int:
        with db.connection(settings.database, application_name="batch_metrics", role=db.BATCH_ROLE) as conn:
            days = chosen
            if args.changed:
                with conn, conn.cursor() as cur:
                    looked_from, started, days = changed_days(cur, cli.today_utc())
                since = (
                    "every closed day (first run)"
                    if looked_from is None
                    else f"events stored since {looked_from:%Y-%m-%d %H:%M} UTC"
                )
                print(f"days changed ({since}): {', '.join(map(str, days)) if days else 'none'}")
            failed = recompute_days(conn, days, settings.analytics_funnel_window_s)
            if failed:
                # Not recorded: the next --changed run looks at the failed days again.
                raise InvalidInput(
                    f"{len(failed)} of {len(days)} days were not recomputed: {', '.join(failed)}; their previous batch "
                    "metrics stand. Fix the cause (see the PostgreSQL log) and run again"
                )
            if args.changed:
                # Recorded last: a run that failed half-way is looked at again from the same time.
                with conn, conn.cursor() as cur:
                    record_run(cur, started, looked_from, days)
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
