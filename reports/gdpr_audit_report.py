"""``python -m reports.gdpr_audit_report``: the command line of :mod:`reports.audit_report`."""

from __future__ import annotations

import argparse

from core import cli
from core.config import Settings
from reports.audit_report import generate
from reports.render import FORMATS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports.gdpr_audit_report",
        description="Print the GDPR audit report (requests by type and status, overdue requests, processing time, "
        "erasures and exports, redactions at ingest, dead letters, residual-PII check, a chart of the last 30 days, "
        "consent grants and withdrawals per day, what retention removed and the oldest data held) "
        "and write it to REPORTS_DIR/gdpr_audit_report_YYYY-MM-DD.{md,html,json}.",
    )
    cli.add_format_argument(parser, FORMATS)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        text, files = generate(settings, cli.today_utc(), args.formats)
        print(text)
        cli.print_written(files)
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
