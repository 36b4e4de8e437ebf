"""Dead letters: how many messages were rejected at ingest, by reason, and the latest ones.

Payloads are stored redacted (emails, names, addresses, phones and IPs removed) and truncated.
"""

from __future__ import annotations

import argparse

import psycopg2.extensions

from core import cli, db
from core.config import Settings

PREVIEW_CHARS = 120


def counts_by_reason(conn: psycopg2.extensions.connection) -> list[tuple[str, int]]:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT reason, count(*) FROM dead_letter_events GROUP BY reason ORDER BY count(*) DESC, reason")
        return [(reason, int(n)) for reason, n in cur.fetchall()]


def latest(conn: psycopg2.extensions.connection, limit: int) -> list[tuple[object, ...]]:
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT received_at, topic, kafka_partition, kafka_offset, reason, left(payload, %s)"
            " FROM dead_letter_events ORDER BY id DESC LIMIT %s",
            (PREVIEW_CHARS, limit),
        )
        return list(cur.fetchall())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumers.dead_letters",
        description="Show how many events were dead-lettered, by reason, and optionally the latest ones.",
    )
    parser.add_argument("--show", type=int, default=0, metavar="N", help="also list the latest N dead letters")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.show < 0:
        parser.error("--show must be 0 or more")

    def execute(settings: Settings) -> int:
        with db.connection(settings.database, application_name="dead_letters", role=db.MONITOR_ROLE) as conn:
            counts = counts_by_reason(conn)
            rows = latest(conn, args.show) if args.show else []
        total = sum(n for _reason, n in counts)
        print(f"dead letters: {total:,}")
        for reason, n in counts:
            print(f"  {reason:<22} {n:>10,}")
        for received_at, topic, partition, offset, why, preview in rows:
            print(f"{received_at:%Y-%m-%dT%H:%M:%S} {topic}[{partition}]@{offset} {why}: {preview}")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
