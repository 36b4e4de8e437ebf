"""``python -m gdpr.retention``: the command line of :mod:`gdpr.retention`."""

from __future__ import annotations

import argparse

from core import cli, db
from core.config import Settings
from gdpr.retention import KINDS, apply_retention


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gdpr.retention",
        description="Storage limitation (GDPR Art. 5(1)(e)): remove what is older than its retention. Raw events "
        "(RETENTION_DAYS, default 395; whole daily partitions of events_raw, and old rows of its default partition), "
        "dead letters "
        "(DEAD_LETTER_RETENTION_DAYS, 30), access exports past their download period and stray export files "
        "(ACCESS_EXPORT_DAYS, 7), the residue of processed privacy requests (PRIVACY_REQUEST_RETENTION_DAYS, 1096; "
        "their status and HMAC proof stay) with expired DPO sessions and used codes, and report files "
        "(REPORT_RETENTION_DAYS, 400). The daily metrics and the audit trail stay. Each kind's result is recorded "
        "in retention_runs and shown by the GDPR audit report.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count and print what would be removed, change nothing (recorded as a dry run)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        choices=list(KINDS),
        metavar="KIND",
        help=f"only these kinds of data: {', '.join(KINDS)} (default: all)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m gdpr.retention``."""
    args = build_parser().parse_args(argv)
    kinds = args.only or list(KINDS)

    def execute(settings: Settings) -> int:
        with db.connection(settings.database, application_name="retention", role=db.RETENTION_ROLE) as conn:
            apply_retention(
                conn, settings, kinds, today=cli.today_utc(), dry_run=args.dry_run, done=lambda r: print(r.summary(), flush=True)
            )
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
