"""``python -m analytics.rfm``: score every buyer (recency, frequency, monetary quintiles and the
named segments) as of a day, store the per-person rows (replacing the previous scoring), and print
what may leave the pseudonymous zone: each segment's size and value, small cells suppressed
(REPORT_MIN_CELL_USERS); a console table, or ``--json``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from analytics import scoring
from core import cli, db
from core.config import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analytics.rfm",
        description="RFM: score every buyer by recency (days since the last purchase), frequency (purchases) and "
        "monetary value (their total), 1-5 each by quintile, and place them in named segments (champions, loyal "
        "customers, at risk, hibernating, ...). The per-person rows are stored in analytics_rfm_scores, replacing "
        "the previous scoring (readable by the analytics logins only); what is printed is each segment's size and "
        "value, segments under REPORT_MIN_CELL_USERS people suppressed. Read from the per-person-day summaries that "
        "python -m batch.batch_metrics keeps; connects as login_analytics (DB_PASSWORD_ANALYTICS).",
    )
    parser.add_argument(
        "--as-of",
        dest="as_of",
        type=cli.parse_day,
        help="score the histories up to this UTC day (default: the last summarised day)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--skip-if-too-few",
        action="store_true",
        help="when there is too little data (no summarised day yet), print one line saying so "
        "and exit 0 instead of failing with status 2: for the scheduler's nightly job on a young platform",
    )
    return parser


def publishable(result: scoring.RfmResult, k: int) -> dict[str, Any]:
    """The segment table as JSON-ready data: suppressed figures are null."""
    return {
        "as_of": result.as_of.isoformat(),
        "people": result.people if result.people == 0 or result.people >= k else None,
        "min_cell_users": k,
        "segments": [
            {
                "segment": s.segment,
                "people": s.people,
                "total_value": scoring.money(s.total_value),
                "mean_value": scoring.money(s.mean_value),
            }
            for s in result.segments
        ],
    }


def table(result: dict[str, Any]) -> str:
    """The segments as a console table (* marks a suppressed cell)."""
    people = result["people"]
    lines = [
        f"RFM segments as of {result['as_of']}: {'*' if people is None else f'{people:,}'} buyers scored"
        f" (segments under {result['min_cell_users']} people suppressed: *)",
        f"{'segment':<20} {'people':>9} {'share':>7} {'total value':>14} {'mean value':>11}",
    ]
    for s in result["segments"]:
        if s["people"] is None:
            lines.append(f"{s['segment']:<20} {'*':>9} {'*':>7} {'*':>14} {'*':>11}")
            continue
        share = f"{s['people'] / people:.1%}" if people else ""
        mean = "" if s["mean_value"] is None else f"{s['mean_value']:,.2f}"
        lines.append(f"{s['segment']:<20} {s['people']:>9,} {share:>7} {s['total_value']:>14,.2f} {mean:>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        connect = db.connection(settings.database, application_name="analytics_rfm", role=db.ANALYTICS_MODEL_ROLE)
        try:
            with connect as conn, conn, conn.cursor() as cur:
                as_of = args.as_of or scoring.last_summarised(cur)
                scoring.check_as_of(cur, as_of)
                result = scoring.score_rfm(cur, as_of, k=settings.report_min_cell_users)
        except scoring.NotEnoughData as e:
            if not args.skip_if_too_few:
                raise
            print(f"skipped: {e}")
            return 0
        published = publishable(result, settings.report_min_cell_users)
        print(json.dumps(published, indent=2) if args.json else table(published))
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
