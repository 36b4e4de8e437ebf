"""Consumer that stores every valid event once in ``events_raw`` (exactly-once, via core.sink).

Rows are staged with COPY into a temporary table and inserted with ``ON CONFLICT (event_id)
DO NOTHING``: the offsets make each message count once, and the event id guards against a
producer that sent the same event twice.
"""

from __future__ import annotations

import argparse
import csv
import io
import json

import psycopg2.extensions

from core import cli
from core.config import Settings
from core.sink import Consumed, Cursor, Sink

DEFAULT_GROUP = "raw-events-sink"
COLUMNS = "event_id, user_id, event_type, event_timestamp, event_date, amount, metadata, kafka_partition, kafka_offset"


class RawEventsWriter:
    """Writes batches of events into ``events_raw``."""

    def __init__(self) -> None:
        self.duplicates = 0

    def prepare(self, conn: psycopg2.extensions.connection) -> None:
        with conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS events_stage (LIKE events_raw INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )

    def write(self, cur: Cursor, events: list[Consumed]) -> None:
        buffer = io.StringIO()
        out = csv.writer(buffer)
        for item in events:
            e = item.event
            out.writerow(
                (
                    e.event_id,
                    e.user_id,
                    e.event_type,
                    e.event_timestamp.isoformat(),
                    e.event_date.isoformat(),
                    "" if e.amount is None else e.amount,
                    json.dumps(e.metadata, separators=(",", ":"), default=str),
                    item.partition,
                    item.offset,
                )
            )
        buffer.seek(0)
        cur.copy_expert(f"COPY events_stage ({COLUMNS}) FROM STDIN WITH (FORMAT csv)", buffer)
        cur.execute(f"INSERT INTO events_raw ({COLUMNS}) SELECT {COLUMNS} FROM events_stage ON CONFLICT (event_id) DO NOTHING")
        self.duplicates += len(events) - cur.rowcount


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumers.store_raw_events",
        description="Store every valid event from the events topic in events_raw, exactly once. "
        "Invalid events go to dead_letter_events with the reason. Stops cleanly on Ctrl+C / SIGTERM.",
    )
    parser.add_argument("--group", default=DEFAULT_GROUP, help=f"consumer group (default: {DEFAULT_GROUP})")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        Sink(settings, args.group, RawEventsWriter(), cli.install_stop_handlers()).run()
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
