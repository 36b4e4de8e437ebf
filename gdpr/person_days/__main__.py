"""``python -m gdpr.person_days``: the command line of :mod:`gdpr.person_days`."""

from __future__ import annotations

import argparse
import time

from core import cli, db
from core.config import Settings
from gdpr.person_days import build


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m gdpr.person_days",
        description="Build the lists of the days each person's events are on, for the closed days that have none or "
        "received events since (an erasure then reads those days only); a nightly job of the scheduler.",
    )


def main(argv: list[str] | None = None) -> None:
    build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        started = time.perf_counter()
        with db.connection(settings.database, application_name="gdpr_person_days", role=db.GDPR_ROLE) as conn:
            days, people = build(conn, settings.database)
        if days:
            span = f"{days[0]}" if len(days) == 1 else f"{len(days)} days, {days[0]} to {days[-1]}"
            print(f"person days built for {span}: {people:,} people's lists changed in {time.perf_counter() - started:.1f} s")
        else:
            print("person days: every closed day is built")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
