"""``python -m core.db``: the command line of :mod:`core.db`."""

from __future__ import annotations

import argparse

from core import cli
from core.config import Settings
from core.db import migrate


def _main(settings: Settings) -> int:
    applied = migrate(settings.database)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (schema up to date)'}")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m core.db``: apply the migrations in sql/."""
    parser = argparse.ArgumentParser(
        prog="python -m core.db",
        description="Apply the numbered SQL migrations in sql/ that are not applied yet (idempotent).",
    )
    parser.parse_args(argv)
    cli.run(_main)


if __name__ == "__main__":
    main()
