"""``python -m collector.keys create|list|revoke``: the operator's commands for write keys.

Runs with the DATABASE_URL login (the operator), not as the collector's role, which may only read
keys. A new key is printed once, alone on the last line, and never stored: only its SHA-256.
A running collector picks up a new or revoked key within COLLECTOR_KEY_REFRESH_S seconds.
"""

# A command-line tool: it prints its results for people (as the project's other commands do).

from __future__ import annotations

import argparse
from collections.abc import Callable

import psycopg2.errors

from collector import auth
from core import cli, db
from core.config import Settings
from core.errors import InvalidInput

# Requests a second per key, each of up to COLLECTOR_MAX_EVENTS events: a busy site's pages send
# a few requests a second each, and 200 is about a tenth of what one collector process serves
# with batches of 100, so one key (leaked, or a client in a loop) cannot take the collector over.
DEFAULT_RATE = 200


def _create(settings: Settings, name: str, origins: list[str], rate: int, consent: bool) -> int:
    normalised = sorted({auth.normalise_origin(o) for o in origins})
    auth.check_name(name)
    with db.connection(settings.database, application_name="collector-keys") as conn:
        try:
            with conn, conn.cursor() as cur:
                key = auth.create_key(cur, name, normalised, rate, may_record_consent=consent)
        except psycopg2.errors.UniqueViolation as e:
            raise InvalidInput(
                f"a live key named {name!r} exists: revoke it first (python -m collector.keys revoke {name})"
            ) from e
    print(
        f"created write key {name!r}: {rate} requests/s, origins: {', '.join(normalised) or 'none (server-to-server only)'}, "
        f"consent: {'may record' if consent else 'no (events only)'}"
    )
    print("store it now: it is shown once, and only its hash is kept. Send it as 'Authorization: Bearer <key>'.")
    print(key)
    return 0


def _list(settings: Settings) -> int:
    with db.connection(settings.database, application_name="collector-keys") as conn, conn, conn.cursor() as cur:
        keys = auth.list_keys(cur)
    if not keys:
        print("no write keys: create one with `python -m collector.keys create NAME`")
        return 0
    rows = [
        (
            k.name,
            k.prefix + "...",
            ",".join(k.origins) or "-",
            str(k.rate_per_s),
            f"{k.created_at:%Y-%m-%dT%H:%M:%SZ}",
            f"{k.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if k.revoked_at else "-",
            "yes" if k.may_record_consent else "no",
        )
        for k in keys
    ]
    header = ("name", "prefix", "origins", "rate/s", "created", "revoked", "consent")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke(settings: Settings, name: str) -> int:
    with db.connection(settings.database, application_name="collector-keys") as conn, conn, conn.cursor() as cur:
        revoked = auth.revoke_key(cur, name)
    if not revoked:
        raise InvalidInput(f"no live key named {name!r}: see `python -m collector.keys list`")
    print(f"revoked write key {name!r}: running collectors refuse it within COLLECTOR_KEY_REFRESH_S seconds")
    return 0


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from e
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} must be at least 1")
    return number


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m collector.keys``."""
    parser = argparse.ArgumentParser(
        prog="python -m collector.keys",
        description="Issue, list and revoke the collector's write keys (stored as SHA-256 hashes).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create",
        help="issue a new key and print it (alone, on the last line)",
        description="Issue a new write key named NAME and print it once, alone on the last line.",
    )
    create.add_argument("name", metavar="NAME", help="a name for the key: 1-64 letters, digits, '_', '.' or '-'")
    create.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="URL",
        help="a browser origin allowed to send with this key, e.g. https://shop.example (repeat for more); "
        "without any, only server-to-server requests (no Origin header) are accepted",
    )
    create.add_argument(
        "--rate",
        type=_positive,
        default=DEFAULT_RATE,
        metavar="N",
        help=f"requests per second allowed for this key, with bursts of up to N at once (default: {DEFAULT_RATE})",
    )
    create.add_argument(
        "--consent",
        action="store_true",
        help="the key may also record consent changes (POST /v1/consent). A key in a web page is public: "
        "with this, anybody who reads the page can record consent for any user id. Give it to the consent "
        "platform's back end, or to a page only where that is acceptable (default: events only)",
    )
    commands.add_parser("list", help="list every key: name, prefix, origins, rate, created, revoked (never the key)")
    revoke = commands.add_parser("revoke", help="revoke the live key NAME", description="Revoke the live write key named NAME.")
    revoke.add_argument("name", metavar="NAME")
    args = parser.parse_args(argv)
    actions: dict[str, Callable[[Settings], int]] = {
        "create": lambda settings: _create(settings, args.name, args.origin, args.rate, args.consent),
        "list": _list,
        "revoke": lambda settings: _revoke(settings, args.name),
    }
    cli.run(actions[args.command])


if __name__ == "__main__":
    main()
