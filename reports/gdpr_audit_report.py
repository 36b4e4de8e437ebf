"""GDPR audit report: requests received, processed and pending, processing time, erased users.

Printed on the console and written to ``reports/output/gdpr_audit_report_YYYY-MM-DD.md``. It
holds counts and durations only, never personal data.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg2.extensions

from core import cli, db
from core.config import Settings
from reports.render import markdown_table, write_report

STATUSES = ("pending", "completed", "not_found", "rejected")


@dataclass(frozen=True)
class AuditFigures:
    by_status: dict[str, int]
    average_processing: timedelta | None
    anonymized_users: int
    dead_letters: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def pending(self) -> int:
        return self.by_status.get("pending", 0)

    @property
    def processed(self) -> int:
        return self.total - self.pending


def collect(conn: psycopg2.extensions.connection) -> AuditFigures:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM privacy_requests GROUP BY status")
        by_status = {status: 0 for status in STATUSES} | {status: int(n) for status, n in cur.fetchall()}
        cur.execute("SELECT avg(processed_at - requested_at) FROM privacy_requests WHERE processed_at IS NOT NULL")
        row = cur.fetchone()
        average = row[0] if row else None
        cur.execute("SELECT count(*) FROM users_pii WHERE anonymized_at IS NOT NULL")
        row = cur.fetchone()
        anonymized = int(row[0]) if row else 0
        cur.execute("SELECT count(*) FROM dead_letter_events")
        row = cur.fetchone()
        dead = int(row[0]) if row else 0
    return AuditFigures(by_status, average, anonymized, dead)


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "n/a (nothing processed yet)"
    return f"{value.total_seconds():,.1f} s"


def render_markdown(figures: AuditFigures, day: date) -> str:
    lines = [
        f"# GDPR audit report {day.isoformat()}",
        "",
        f"- Privacy requests: **{figures.total:,}** ({figures.processed:,} processed, {figures.pending:,} pending)",
        f"- Average processing time: **{_duration(figures.average_processing)}**",
        f"- Users with anonymized PII: **{figures.anonymized_users:,}**",
        f"- Dead-lettered events (rejected at ingest): **{figures.dead_letters:,}**",
        "",
        "## Requests by status",
        "",
        markdown_table(["status", "count"], [(status, figures.by_status[status]) for status in figures.by_status]),
        "",
    ]
    return "\n".join(lines)


def generate(settings: Settings, day: date) -> tuple[str, Path]:
    with db.connection(settings.database, application_name="gdpr_audit_report") as conn:
        figures = collect(conn)
    text = render_markdown(figures, day)
    return text, write_report(settings.reports_dir, f"gdpr_audit_report_{day.isoformat()}.md", text)


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m reports.gdpr_audit_report",
        description="Print the GDPR audit report (requests processed vs pending, average processing time, users "
        "with anonymized PII) and write it to REPORTS_DIR/gdpr_audit_report_YYYY-MM-DD.md.",
    )


def main(argv: list[str] | None = None) -> None:
    build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        text, path = generate(settings, cli.today_utc())
        print(text)
        print(f"written to {path}")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
