"""Daily business report: total events and revenue, and batch vs streaming per event type.

Printed on the console and written to ``reports/output/business_report_YYYY-MM-DD.md``. The
headline figures come from the batch metrics when the batch job has run for the day (the source
of truth), otherwise from the streaming metrics; the report says which.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg2.extensions

from batch.compare_batch_vs_stream import Comparison, compare_day
from core import cli, db
from core.config import Settings
from reports.render import markdown_table, write_report


@dataclass(frozen=True)
class DailyReport:
    """Everything the business report shows for one day."""

    day: date
    rows: list[Comparison]
    source: str  # "batch" or "streaming"
    dead_letters: dict[str, int] = field(default_factory=dict)  # received on the day, by reason

    @property
    def total_events(self) -> int:
        if self.source == "batch":
            return sum(r.batch_count for r in self.rows)
        return sum(r.stream_count for r in self.rows)

    @property
    def total_revenue(self) -> Decimal:
        if self.source == "batch":
            return sum((r.batch_revenue for r in self.rows), Decimal("0.00"))
        return sum((r.stream_revenue for r in self.rows), Decimal("0.00"))

    @property
    def agrees(self) -> bool:
        return all(r.agrees for r in self.rows)


def build_report(conn: psycopg2.extensions.connection, day: date) -> DailyReport:
    rows = compare_day(conn, day)
    source = "batch" if any(r.batch_count for r in rows) else "streaming"
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT reason, count(*) FROM dead_letter_events WHERE received_at >= %(day)s::date AT TIME ZONE 'UTC'"
            " AND received_at < (%(day)s::date + 1) AT TIME ZONE 'UTC' GROUP BY reason ORDER BY reason",
            {"day": day},
        )
        dead = {reason: int(n) for reason, n in cur.fetchall()}
    return DailyReport(day, rows, source, dead)


def render_markdown(report: DailyReport) -> str:
    """The report as Markdown (the console shows the same text)."""
    lines = [f"# Business report {report.day.isoformat()}", ""]
    if report.total_events == 0:
        lines += ["No events were recorded for this day.", ""]
    lines += [
        f"- Total events: **{report.total_events:,}**",
        f"- Total revenue: **{report.total_revenue:,.2f} EUR**",
        f"- Figures from: **{report.source}** metrics"
        + (" (batch job has run for this day)" if report.source == "batch" else " (no batch run for this day yet)"),
        f"- Batch vs streaming: **{'agree exactly' if report.agrees else 'DIFFER'}**",
        f"- Events rejected at ingest (dead letters received this day): **{sum(report.dead_letters.values()):,}**"
        + (" (" + ", ".join(f"{reason} {n:,}" for reason, n in report.dead_letters.items()) + ")" if report.dead_letters else ""),
        "",
        "## Batch vs streaming per event type",
        "",
        markdown_table(
            ["event_type", "batch count", "streaming count", "count diff", "batch EUR", "streaming EUR", "EUR diff"],
            [
                (
                    r.event_type,
                    f"{r.batch_count:,}",
                    f"{r.stream_count:,}",
                    f"{r.count_diff:+,}",
                    f"{r.batch_revenue:,.2f}",
                    f"{r.stream_revenue:,.2f}",
                    f"{r.revenue_diff:+,.2f}",
                )
                for r in report.rows
            ],
        ),
        "",
    ]
    return "\n".join(lines)


def generate(settings: Settings, day: date) -> tuple[str, Path]:
    """Build, render and write the report; return its text and file."""
    with db.connection(settings.database, application_name="daily_report", role=db.ANALYTICS_ROLE) as conn:
        report = build_report(conn, day)
    text = render_markdown(report)
    return text, write_report(settings.reports_dir, f"business_report_{day.isoformat()}.md", text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports.generate_daily_report",
        description="Print the daily business report (events, revenue, batch vs streaming per event type) and "
        "write it to REPORTS_DIR/business_report_YYYY-MM-DD.md.",
    )
    cli.add_day_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        text, path = generate(settings, args.day or cli.today_utc())
        print(text)
        print(f"written to {path}")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
