"""Recompute ``metrics_batch_daily`` from ``events_raw``, in SQL, for one UTC day or a range.

Each day's rows are replaced in one transaction, so a reader sees either the old or the new
figures, never a mix; re-running gives the same result.
"""

from __future__ import annotations

import argparse

from batch.metrics import recompute_day
from core import cli, db
from core.config import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m batch.batch_metrics",
        description="Recompute metrics_batch_daily (event count and revenue per event type) from events_raw, "
        "for one UTC day or a range of days.",
    )
    cli.add_day_range_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    days = cli.days_from_arguments(parser, args)

    def execute(settings: Settings) -> int:
        progress = cli.Progress("days", total=len(days))
        with db.connection(settings.database, application_name="batch_metrics", role=db.BATCH_ROLE) as conn:
            for day in days:
                rows = recompute_day(conn, day)
                print(f"batch metrics for {day}:")
                if not rows:
                    print("  no events stored for this day (batch metrics it has are kept: its events are past retention)")
                for kind, count, revenue in rows:
                    print(f"  {kind:<12} {count:>12,} events  {revenue:>16} EUR")
                if len(days) > 1:
                    progress.advance(1)
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
