"""``python -m reports.generate_daily_report``: the command line of :mod:`reports.daily_report`."""

from __future__ import annotations

import argparse

from core import cli
from core.config import Settings
from reports.daily_report import generate
from reports.render import FORMATS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports.generate_daily_report",
        description="Print the daily business report (KPIs vs the previous day and the same weekday last week, "
        "events dropped for missing consent, funnel, countries, hourly charts, 14-day trend, the ordered funnel of people "
        "and a retention heatmap from the analytics summaries, batch vs streaming) "
        "and write it to "
        "REPORTS_DIR/business_report_YYYY-MM-DD.{md,html,json}. Several days with --from/--to.",
    )
    cli.add_day_range_arguments(parser)
    cli.add_format_argument(parser, FORMATS)
    parser.add_argument(
        "--min-cell-users",
        type=int,
        default=None,
        metavar="K",
        help="suppress breakdown cells describing fewer than K users (default: REPORT_MIN_CELL_USERS, 5)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    days = cli.days_from_arguments(parser, args)
    if args.min_cell_users is not None and args.min_cell_users < 1:
        parser.error("--min-cell-users must be 1 or more")

    def execute(settings: Settings) -> int:
        k = args.min_cell_users or settings.report_min_cell_users
        progress = cli.Progress("reports", total=len(days)) if len(days) > 1 else None
        for day in days:
            text, files = generate(settings, day, args.formats, k)
            if progress is None:
                print(text)
            else:
                progress.advance(1, day.isoformat())
            cli.print_written(files)
        if progress is not None:
            progress.show("done")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
