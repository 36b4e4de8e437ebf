"""``python -m core.partitions``: the command line of :mod:`core.partitions`."""

from __future__ import annotations

import argparse

import psycopg2

from core import cli, db
from core.config import Settings
from core.errors import InvalidInput
from core.partitions import AHEAD_DAYS, ahead, create_partitions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.partitions",
        description="Create the daily partitions of events_raw for a range of UTC days (default: yesterday "
        f"to {AHEAD_DAYS} days ahead), moving those days' rows out of the default partition. Run it before "
        "loading history, so that its rows go to their days' partitions. Safe to run again.",
    )
    parser.add_argument("--from", dest="first", type=cli.parse_day, help="the first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="last", type=cli.parse_day, help="the last day, YYYY-MM-DD (at most 31 days ahead)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    first, last = ahead(cli.today_utc())
    first, last = args.first or first, args.last or last
    if first > last:
        raise SystemExit(f"--from {first} is after --to {last}")

    def execute(settings: Settings) -> int:
        with db.connection(settings.database, application_name="partitions") as conn:
            try:
                with conn, conn.cursor() as cur:
                    created = create_partitions(cur, first, last)
            except psycopg2.Error as e:
                raise InvalidInput(f"the partitions were not created: {db.describe_error(e)}") from e
        print(f"partitions of events_raw from {first} to {last}: {created} created")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
