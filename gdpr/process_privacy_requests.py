"""``python -m gdpr.process_privacy_requests``: the command line of :mod:`gdpr.processing`.

The design document names this file and its function: ``process_privacy_requests()`` is
imported from here by code written against the design, so it stays importable from this module.
"""

from __future__ import annotations

import argparse
from collections import Counter

from core import cli, db, metrics
from core.config import Settings
from gdpr import metrics as gdpr_metrics
from gdpr.processing import DEFAULT_BATCH, process_privacy_requests, watch
from gdpr.vacuum import finish_vacuum

__all__ = ["main", "process_privacy_requests"]  # the design's function, imported from here


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gdpr.process_privacy_requests",
        description="Process pending privacy_requests: erasure (default) forgets the person, access writes a JSON "
        "export to REPORTS_DIR/access/, rectification corrects users_pii, restriction and objection stop analytics "
        "on the person. Each request ends completed, not_found or rejected (an erasure under a legal hold waits "
        "on_hold), and every step is recorded in privacy_audit_log. Without --watch: process what is pending and exit.",
    )
    parser.add_argument("--watch", action="store_true", help="keep running; process each new request within about a second")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help=f"requests per transaction (default: {DEFAULT_BATCH})"
    )
    parser.add_argument(
        "--finish-vacuum",
        action="store_true",
        help="only finish the vacuum that large erasures left for later: clean the indexes of the partitions of "
        "events_raw they queued (a nightly job of the scheduler), then exit",
    )
    metrics.add_metrics_argument(parser, "gdpr.process_privacy_requests")
    return parser


def _summary(outcomes: Counter[str]) -> str:
    if not outcomes:
        return "privacy requests: none pending"
    detail = ", ".join(f"{status} {n}" for status, n in sorted(outcomes.items()))
    return f"privacy requests: {sum(outcomes.values())} processed ({detail})"


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.metrics_port is not None and not args.watch:
        parser.error("--metrics-port applies to --watch (a single run ends before anything could scrape it)")
    if args.finish_vacuum and args.watch:
        parser.error("--finish-vacuum is a run of its own (--watch finishes the vacuum by itself when idle)")

    def execute(settings: Settings) -> int:
        if args.finish_vacuum:
            with db.connection(settings.database, application_name="gdpr_processor", role=db.GDPR_ROLE) as conn:
                done = finish_vacuum(conn, cli.install_stop_handlers())
            print(f"vacuum finished for {done} partitions of events_raw")
            return 0
        if args.watch:
            settings.gdpr_hmac_key  # noqa: B018 - refuse a missing or public key before touching any request
            exporter = metrics.serve(settings, "gdpr.process_privacy_requests", args.metrics_port)
            deadlines_every_s = gdpr_metrics.DEADLINES_EVERY_S if exporter is not None else None
            outcomes = watch(settings, cli.install_stop_handlers(), args.batch_size, deadlines_every_s=deadlines_every_s)
        else:
            outcomes = process_privacy_requests(settings, args.batch_size)
        print(_summary(outcomes))
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
