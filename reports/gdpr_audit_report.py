"""GDPR audit report: the lifecycle of every privacy request, and proof that erasure held.

Requests by type and status, overdue pending requests (Art. 12(3): one month), processing time
p50/p95/max, erasures and exports completed, personal data redacted at ingest, dead letters,
and a residual-PII check: rows in the analytics tables that still link to an erased user (must
be 0). Printed on the console and written to ``REPORTS_DIR/gdpr_audit_report_YYYY-MM-DD.md``.
It runs as the ``privacy_auditor`` role, which cannot read an email, and holds counts and
durations only.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg2.extensions

from core import cli, db
from core.config import Settings
from reports.render import markdown_table, write_report

STATUSES = ("pending", "completed", "not_found", "rejected")
REQUEST_TYPES = ("erasure", "access")


@dataclass(frozen=True)
class AuditFigures:
    by_type_status: dict[tuple[str, str], int]
    overdue: int
    processing_s: tuple[float, float, float] | None  # p50, p95, max
    anonymized_users: int
    residual_links: int
    redactions: dict[str, int]
    dead_letters: dict[str, int]

    def count(self, *, request_type: str | None = None, status: str | None = None) -> int:
        return sum(
            n
            for (kind, state), n in self.by_type_status.items()
            if (request_type is None or kind == request_type) and (status is None or state == status)
        )

    @property
    def total(self) -> int:
        return self.count()

    @property
    def pending(self) -> int:
        return self.count(status="pending")

    @property
    def processed(self) -> int:
        return self.total - self.pending


def _scalar(cur: db.Cursor, query: str) -> int:
    cur.execute(query)
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def collect(conn: psycopg2.extensions.connection) -> AuditFigures:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT request_type, status, count(*) FROM privacy_requests GROUP BY 1, 2")
        by_type_status = {(kind, status): int(n) for kind, status, n in cur.fetchall()}
        overdue = _scalar(cur, "SELECT count(*) FROM privacy_requests WHERE status = 'pending' AND due_at < now()")
        cur.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.95) WITHIN GROUP (ORDER BY s), max(s)"
            " FROM (SELECT extract(epoch FROM processed_at - requested_at)::float8 AS s FROM privacy_requests"
            " WHERE processed_at IS NOT NULL) AS t"
        )
        row = cur.fetchone()
        processing = (float(row[0]), float(row[1]), float(row[2])) if row and row[0] is not None else None
        anonymized = _scalar(cur, "SELECT count(*) FROM users_pii WHERE anonymized_at IS NOT NULL")
        residual = _scalar(
            cur,
            "SELECT (SELECT count(*) FROM events_raw e JOIN users_pii p USING (user_id) WHERE p.anonymized_at IS NOT NULL)"
            " + (SELECT count(*) FROM users_public u JOIN users_pii p USING (user_id) WHERE p.anonymized_at IS NOT NULL)",
        )
        cur.execute("SELECT kind, sum(redactions) FROM ingest_redactions GROUP BY kind ORDER BY kind")
        redactions = {kind: int(n) for kind, n in cur.fetchall()}
        cur.execute("SELECT reason, count(*) FROM dead_letter_events GROUP BY reason ORDER BY reason")
        dead = {reason: int(n) for reason, n in cur.fetchall()}
    return AuditFigures(by_type_status, overdue, processing, anonymized, residual, redactions, dead)


def _seconds(value: float) -> str:
    return f"{value:,.1f} s" if value < 3600 else f"{value / 3600:,.1f} h"


def render_markdown(figures: AuditFigures, day: date) -> str:
    timing = (
        "n/a (nothing processed yet)"
        if figures.processing_s is None
        else " / ".join(_seconds(v) for v in figures.processing_s) + " (p50 / p95 / max)"
    )
    residual = (
        "0 (no analytics row links to an erased user)" if figures.residual_links == 0 else f"**{figures.residual_links:,} FAIL**"
    )
    lines = [
        f"# GDPR audit report {day.isoformat()}",
        "",
        f"- Privacy requests: **{figures.total:,}** ({figures.processed:,} processed, {figures.pending:,} pending)",
        f"- Overdue (pending past the one-month deadline of Art. 12(3)): **{figures.overdue:,}**",
        f"- Processing time: **{timing}**",
        f"- Erasures completed: **{figures.count(request_type='erasure', status='completed'):,}**;"
        f" access exports completed: **{figures.count(request_type='access', status='completed'):,}**",
        f"- Users with anonymized PII: **{figures.anonymized_users:,}**",
        f"- Residual-PII check: {residual}",
        f"- Personal data redacted at ingest: **{sum(figures.redactions.values()):,}**"
        + (" (" + ", ".join(f"{kind} {n:,}" for kind, n in figures.redactions.items()) + ")" if figures.redactions else ""),
        f"- Dead-lettered events (rejected at ingest): **{sum(figures.dead_letters.values()):,}**"
        + (
            " (" + ", ".join(f"{reason} {n:,}" for reason, n in figures.dead_letters.items()) + ")"
            if figures.dead_letters
            else ""
        ),
        "",
        "## Requests by type and status",
        "",
        markdown_table(
            ["status", *REQUEST_TYPES, "total"],
            [
                (
                    status,
                    *(figures.count(request_type=kind, status=status) for kind in REQUEST_TYPES),
                    figures.count(status=status),
                )
                for status in STATUSES
            ],
        ),
        "",
    ]
    return "\n".join(lines)


def generate(settings: Settings, day: date) -> tuple[str, Path]:
    with db.connection(settings.database, application_name="gdpr_audit_report", role=db.AUDITOR_ROLE) as conn:
        figures = collect(conn)
    text = render_markdown(figures, day)
    return text, write_report(settings.reports_dir, f"gdpr_audit_report_{day.isoformat()}.md", text)


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m reports.gdpr_audit_report",
        description="Print the GDPR audit report (requests by type and status, overdue requests, processing time, "
        "erasures and exports, redactions at ingest, dead letters, residual-PII check) and write it to "
        "REPORTS_DIR/gdpr_audit_report_YYYY-MM-DD.md.",
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
