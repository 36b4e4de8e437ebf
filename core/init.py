"""Prepare a running stack: apply the migrations and create the events topic (idempotent).

Used by docker-compose's ``init`` service; the embedded stack does the same in ``make up``.
"""

from __future__ import annotations

import argparse

from core import cli, db, kafka
from core.config import Settings


def _main(settings: Settings) -> int:
    applied = db.migrate(settings.database)
    created = kafka.ensure_topic(settings.kafka)
    print(f"migrations applied: {len(applied)}; topic {settings.kafka.topic}: {'created' if created else 'exists'}")
    return 0


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="python -m core.init",
        description="Apply the SQL migrations and create the events topic; safe to run again.",
    ).parse_args(argv)
    cli.run(_main)


if __name__ == "__main__":
    main()
