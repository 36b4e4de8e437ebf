"""``python -m analytics.funnel``: the ordered funnel of people (page_view -> add_to_cart ->
purchase, in that order within ANALYTICS_FUNNEL_WINDOW_S) per day, optionally per country, with
conversion rates and median times between steps, from the per-person-day summaries; a console
table, or ``--json``. Small cells are suppressed (REPORT_MIN_CELL_USERS)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from analytics import funnels, summaries
from core import cli, db
from core.config import Settings
from core.errors import InvalidInput


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analytics.funnel",
        description="The ordered funnel of people: page_view, then add_to_cart, then purchase, in that order within the "
        "conversion window (ANALYTICS_FUNNEL_WINDOW_S) on the page view's UTC day, per day (default: the last summarised "
        "day), with conversion rates and median seconds between steps. Read from the per-person-day summaries; days "
        "summarised with another window are refused.",
    )
    cli.add_day_range_arguments(parser)
    parser.add_argument("--country", action="store_true", help="one row per day and country")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _cell(value: object, form: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return "*"
    return format(value, form)


def table(result: dict[str, Any]) -> str:
    """The funnel as a console table."""
    lines = [
        f"ordered funnel, window {result['window_s']} s, {result['from']} to {result['to']}"
        f" (cells under {result['min_cell_users']} people suppressed: *)",
        f"{'day':<10} {'country':<8} {'viewed':>9} {'carted':>9} {'bought':>9} {'view>cart':>9} {'cart>buy':>9}"
        f" {'view>buy':>9} {'med v>c s':>10} {'med c>b s':>10}",
    ]
    for row in result["rows"]:
        people = row["people"]
        lines.append(
            f"{row['day']:<10} {row['country'] or 'all':<8} {_cell(people['page_view'], ','):>9}"
            f" {_cell(people['add_to_cart'], ','):>9}"
            f" {_cell(people['purchase'], ','):>9} {_cell(row['rate_view_to_cart'], '.1%'):>9}"
            f" {_cell(row['rate_cart_to_purchase'], '.1%'):>9} {_cell(row['rate_view_to_purchase'], '.1%'):>9}"
            f" {_cell(row['median_view_to_cart_s'], '.1f'):>10} {_cell(row['median_cart_to_purchase_s'], '.1f'):>10}"
        )
    if result["days_not_summarised"]:
        lines.append(f"not summarised (not closed yet, or past retention): {', '.join(result['days_not_summarised'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = None if args.day is None and args.from_day is None and args.to_day is None else cli.days_from_arguments(parser, args)

    def execute(settings: Settings) -> int:
        connect = db.connection(settings.database, application_name="analytics_funnel", role=db.ANALYTICS_ROLE)
        with connect as conn, conn, conn.cursor() as cur:
            days = chosen
            if days is None:
                last = summaries.coverage(cur).last
                if last is None:
                    raise InvalidInput("no day is summarised yet: run `python -m batch.batch_metrics --changed` first")
                days = [last]
            result = funnels.funnel(cur, days[0], days[-1], window_s=settings.analytics_funnel_window_s, by_country=args.country)
        published = funnels.publishable(result, settings.report_min_cell_users)
        print(json.dumps(published, indent=2) if args.json else table(published))
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
