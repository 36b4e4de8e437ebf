"""``python -m data_generators.generate_events``: the command line of :mod:`data_generators.producer`."""

from __future__ import annotations

import argparse

from core import cli
from core.config import Settings
from data_generators import collector_client
from data_generators.collector_client import CollectorTarget
from data_generators.events import MAX_BACKFILL_DAYS
from data_generators.producer import BEHAVIOURS, FLUSH_TIMEOUT_S, USERS_REFRESH_S, generate_in_processes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_generators.generate_events",
        description="Publish synthetic user events (page_view 70%%, add_to_cart 20%%, purchase 10%%) to the "
        "events topic, keyed by user_id, for users that exist and are not erased. Runs until Ctrl+C unless "
        "--count is given.",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="events per second; 0 = as fast as possible (default: 100)")
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="stop after this many events (default: run until Ctrl+C); with --behaviour shoppers and --backfill-days, "
        "the purchase rates are scaled so that the window holds this many on average, and the run stops at the count "
        "or at the window's end, whichever comes first",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for reproducible events")
    parser.add_argument(
        "--backfill-days",
        type=float,
        default=0.0,
        metavar="DAYS",
        help="stamp events at random moments of the last DAYS days, busier at busy hours, instead of now "
        "(for demos and reports with history; default: 0)",
    )
    parser.add_argument(
        "--behaviour",
        choices=BEHAVIOURS,
        default="uniform",
        help="uniform: each event's user and type drawn at random, page_view 70%%, add_to_cart 20%%, purchase 10%% "
        "(the default); shoppers: sessions of people with their own purchase rates, spend and drop-out (BG/NBD and "
        "Gamma-Gamma), view then cart then purchase, on a weekly rhythm, never before their signup (docs/analytics.md)",
    )
    parser.add_argument(
        "--refresh-users",
        type=float,
        default=USERS_REFRESH_S,
        metavar="SECONDS",
        help=f"re-read the users this often, so erased users stop receiving events (default: {USERS_REFRESH_S:.0f})",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="generator processes, each with its own producer (default: 1; one per core is fastest)",
    )
    parser.add_argument(
        "--flush-timeout",
        type=float,
        default=FLUSH_TIMEOUT_S,
        help=f"seconds to keep delivering queued events when stopping (default: {FLUSH_TIMEOUT_S:.0f})",
    )
    http = parser.add_argument_group(
        "through the HTTP collector",
        "Send the events to the collector (python -m collector) instead of straight to the topic: POST URL/v1/events "
        "with a JSON array per request, a few requests in flight. A 503 or 429 is waited out (Retry-After) and the same "
        "batch sent again; any other refusal stops the run with the collector's error (exit status 2).",
    )
    http.add_argument("--via-http", metavar="URL", default=None, help="the collector's base URL, e.g. http://127.0.0.1:8000")
    http.add_argument("--key", metavar="KEY", default=None, help="the collector write key, sent as Authorization: Bearer KEY")
    http.add_argument(
        "--http-batch",
        type=int,
        default=collector_client.DEFAULT_BATCH,
        metavar="N",
        help=f"events per request, 1 to {collector_client.MAX_BATCH} (default: {collector_client.DEFAULT_BATCH})",
    )
    return parser


def collector_target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> CollectorTarget | None:
    """The collector named by --via-http/--key/--http-batch, or None; parser.error() when they
    do not go together."""
    if args.via_http is None:
        if args.key is not None:
            parser.error("--key is the collector's write key: give it with --via-http URL")
        return None
    if not 1 <= args.http_batch <= collector_client.MAX_BATCH:
        parser.error(f"--http-batch must be between 1 and {collector_client.MAX_BATCH}")
    problem = collector_client.check_url(args.via_http)
    if problem:
        parser.error(problem)
    if not args.key or not args.key.strip() or any(c.isspace() or not c.isprintable() for c in args.key):
        parser.error("--via-http needs --key KEY: a collector write key, without spaces")
    return CollectorTarget(url=args.via_http, key=args.key, batch_size=args.http_batch)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate < 0:
        parser.error("--rate must be 0 or more")
    if args.count is not None and args.count < 0:
        parser.error("--count must be 0 or more")
    if not 0 <= args.backfill_days <= MAX_BACKFILL_DAYS:
        parser.error(f"--backfill-days must be between 0 and {MAX_BACKFILL_DAYS}")
    if args.processes < 1:
        parser.error("--processes must be 1 or more")
    if args.refresh_users <= 0:
        parser.error("--refresh-users must be more than 0")
    via = collector_target(parser, args)

    def execute(settings: Settings) -> int:
        report = generate_in_processes(
            settings,
            processes=args.processes,
            rate=args.rate,
            count=args.count,
            seed=args.seed,
            stop=cli.install_stop_handlers(),
            flush_timeout=args.flush_timeout,
            backfill_days=args.backfill_days,
            refresh_users_s=args.refresh_users,
            via=via,
            behaviour=args.behaviour,
        )
        processes = f"{args.processes} process{'es' if args.processes > 1 else ''}"
        if via is None:
            print(
                f"events: {report.delivered:,} delivered to {settings.kafka.topic}, {report.not_delivered:,} not delivered "
                f"({report.rate:,.0f}/s produced, {processes})"
            )
        else:
            print(
                f"events: {report.delivered:,} accepted by the collector at {via.display_url}, {report.failed:,} rejected, "
                f"{report.undelivered:,} not delivered ({report.rate:,.0f}/s sent, {processes})"
            )
        if report.not_delivered:
            if report.last_error:
                print(f"last delivery error: {report.last_error}")
            return 1
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
