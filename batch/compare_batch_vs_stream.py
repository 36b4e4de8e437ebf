"""Compare batch and streaming daily metrics per UTC day and event type; optionally repair.

Exit status 0 when every day agrees (exactly, or within ``--tolerance``), 1 on any drift, so the
command can gate a pipeline. ``--repair`` rewrites the streaming rows of closed days (before
today, UTC) from freshly recomputed batch rows, the batch being the source of truth, and records
every repaired row in ``metrics_repairs``.

A repair is only correct when the streaming consumer has counted exactly the events the raw
consumer stored: it proceeds only when both groups have stored the same offsets (batch.reconcile).
"""

from __future__ import annotations

import argparse
from datetime import date
from decimal import Decimal, InvalidOperation

from batch.reconcile import compare_day, render_table, repair_day
from core import cli, db
from core.config import Settings


def parse_fraction(text: str) -> Decimal:
    """argparse type for --tolerance: a decimal fraction such as 0.001."""
    try:
        value = Decimal(text)
    except InvalidOperation as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number such as 0.001") from e
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number, 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch.compare_batch_vs_stream",
        description="Compare metrics_batch_daily with metrics_streaming_daily per UTC day and event type. "
        "Exit status 0 when they agree (within --tolerance), 1 on any drift.",
    )
    cli.add_day_range_arguments(parser)
    parser.add_argument(
        "--tolerance",
        type=parse_fraction,
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
    parser.add_argument(
        "--changed",
        action="store_true",
        help="compare the days the last `batch.batch_metrics --changed` run recomputed (late events included)",
    )
    parser.add_argument("--raw-group", help="raw-events consumer group (default: RAW_EVENTS_GROUP, raw-events-sink)")
    parser.add_argument("--streaming-group", help="streaming consumer group (default: STREAMING_GROUP, streaming-metrics)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.changed and (args.day or args.from_day or args.to_day):
        parser.error("--changed takes the days of the last `batch.batch_metrics --changed` run: give no DAY or --from/--to")
    chosen = [] if args.changed else cli.days_from_arguments(parser, args)

    def execute(settings: Settings) -> int:
        drifting: list[date] = []
        today = cli.today_utc()
        with db.connection(settings.database, application_name="compare_batch_vs_stream", role=db.BATCH_ROLE) as conn:
            days = chosen
            if args.changed:
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT days FROM batch_runs ORDER BY id DESC LIMIT 1")
                    row = cur.fetchone()
                days = list(row[0]) if row else []
                print(f"days of the last batch run: {', '.join(map(str, days)) if days else 'none'}")
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
                        raw_group=args.raw_group or settings.groups.raw_events,
                        stream_group=args.streaming_group or settings.groups.streaming_metrics,
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
