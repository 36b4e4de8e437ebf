"""``python -m analytics.retention``: weekly cohorts (by signup week, or by first-purchase week)
and the share of each active in each following week, from the per-person-day summaries; a
console table, or ``--json``. Small cells are suppressed (REPORT_MIN_CELL_USERS)."""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from typing import Any

from analytics import cohorts, summaries
from core import cli, db
from core.config import Settings
from core.errors import InvalidInput

DEFAULT_WEEKS = 12


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analytics.retention",
        description="Weekly retention cohorts: of the people who signed up (or first bought) in a week, the share active "
        "in each following week (weeks start on Monday, UTC). Read from the per-person-day summaries that "
        "python -m batch.batch_metrics keeps; weeks not begun are empty, not zero.",
    )
    parser.add_argument("--by", choices=cohorts.BY, default="signup", help="what makes a cohort (default: signup)")
    parser.add_argument(
        "--weeks", type=int, default=DEFAULT_WEEKS, help=f"weeks after the cohort's own to show (default {DEFAULT_WEEKS})"
    )
    parser.add_argument(
        "--from",
        dest="from_day",
        type=cli.parse_day,
        help="first cohort: the week of this UTC day (default: --weeks before --as-of)",
    )
    parser.add_argument(
        "--as-of", dest="as_of", type=cli.parse_day, help="the last day counted (default: the last summarised day)"
    )
    parser.add_argument("--country", action="store_true", help="one cohort per week and country")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def table(result: dict[str, Any]) -> str:
    """The cohorts as a console table: size, then the share active in each week (blank: not begun)."""
    header = f"{'cohort':<10} {'country':<8} {'people':>9} " + " ".join(f"{f'w{k}':>7}" for k in range(result["weeks"] + 1))
    lines = [
        f"retention by {result['by']} week, as of {result['as_of']}"
        f" (cells under {result['min_cell_users']} people suppressed: *)",
        header,
    ]
    for cohort in result["cohorts"]:
        size = cohort["size"] if isinstance(cohort["size"], int) else "*"
        cells = []
        for share in cohort["share"]:
            cells.append("" if share is None else ("*" if isinstance(share, str) else f"{share:.1%}"))
        size_text = f"{size:,}" if isinstance(size, int) else size
        lines.append(f"{cohort['week']:<10} {cohort['country'] or 'all':<8} {size_text:>9} " + " ".join(f"{c:>7}" for c in cells))
    if not result["cohorts"]:
        lines.append("(no cohort in this range)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.weeks <= 520:
        parser.error("--weeks is 0 to 520")

    def execute(settings: Settings) -> int:
        connect = db.connection(settings.database, application_name="analytics_retention", role=db.ANALYTICS_ROLE)
        with connect as conn, conn, conn.cursor() as cur:
            built = summaries.coverage(cur)
            if built.last is None:
                raise InvalidInput("no day is summarised yet: run `python -m batch.batch_metrics --changed` first")
            as_of: date = args.as_of or built.last
            if as_of > built.last:
                raise InvalidInput(f"--as-of {as_of} is after the last summarised day, {built.last}")
            first = args.from_day or as_of - timedelta(weeks=args.weeks)
            if first > as_of:
                raise InvalidInput(f"--from {first} is after --as-of {as_of}")
            result = cohorts.retention(cur, first=first, as_of=as_of, weeks=args.weeks, by=args.by, by_country=args.country)
        published = cohorts.publishable(result, settings.report_min_cell_users)
        print(json.dumps(published, indent=2) if args.json else table(published))
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
