"""``python -m gdpr.verify_audit``: the command line of :mod:`gdpr.verify_audit`."""

from __future__ import annotations

import argparse

from core import cli
from core.config import Settings
from gdpr.verify_audit import PRIVACY_LEDGER, contains, seal, verify, verify_ledger, verify_seals


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gdpr.verify_audit",
        description="Check the hash chains of the GDPR audit trail (privacy_audit_log) and the privacy ledger"
        " (privacy_ledger): exit 0 when it is whole, "
        "1 naming the first broken row.",
    )
    parser.add_argument(
        "--expect-head",
        metavar="HASH",
        help="the last hash a previous check printed: also fail if the chain no longer contains it",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m gdpr.verify_audit``."""
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        key = settings.audit_seal_key
        verdict = verify(settings)
        if verdict.broken_at is not None:
            print(
                f"audit trail BROKEN at row {verdict.broken_at}: {verdict.reason} ({verdict.rows - 1} rows before it are whole)"
            )
            return 1
        if args.expect_head and not contains(settings, args.expect_head):
            print(f"audit trail BROKEN: no row has the hash {args.expect_head} any more (rows were removed)")
            return 1
        seals, wrong = verify_seals(settings, key)
        if wrong is not None:
            print(f"audit trail BROKEN: {wrong}")
            return 1
        ledger = verify_ledger(settings)
        if ledger.broken_at is not None:
            print(
                f"privacy ledger BROKEN at row {ledger.broken_at}: {ledger.reason} ({ledger.rows - 1} rows before it are whole)"
            )
            return 1
        ledger_seals, ledger_wrong = verify_seals(settings, key, PRIVACY_LEDGER)
        if ledger_wrong is not None:
            print(f"privacy ledger BROKEN: {ledger_wrong}")
            return 1
        if verdict.last_id is not None:
            seal(settings, key, verdict.last_id, verdict.head)
        if ledger.last_id is not None:
            seal(settings, key, ledger.last_id, ledger.head, PRIVACY_LEDGER)
        sealed = "; head sealed" if verdict.last_id is not None else ""
        ledger_sealed = "; head sealed" if ledger.last_id is not None else ""
        print(
            f"audit trail whole: {verdict.rows:,} rows; last hash {verdict.head or '(empty trail)'};"
            f" {seals:,} earlier seals hold{sealed}; privacy ledger whole: {ledger.rows:,} rows,"
            f" last hash {ledger.head or '(empty ledger)'}; {ledger_seals:,} earlier seals hold{ledger_sealed}"
        )
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
