"""Consumer that keeps ``metrics_streaming_daily`` current: counts and revenue per UTC day and type.

Each batch is summed in memory and added to the table with one upsert, in the same transaction
as the offsets (core.sink), so a crash can neither lose nor double-count an event.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import date
from decimal import Decimal

import psycopg2.extensions
from psycopg2.extras import execute_values

from core import cli, metrics
from core.config import Settings
from core.db import Cursor
from core.sink import Consumed, Sink, SinkBatch

Deltas = dict[tuple[date, str], tuple[int, Decimal]]


def aggregate(events: list[Consumed]) -> Deltas:
    """Count and revenue per (UTC day, event type) for one batch."""
    counts: dict[tuple[date, str], int] = defaultdict(int)
    revenue: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for item in events:
        key = (item.event.event_date, item.event.event_type)
        counts[key] += 1
        if item.event.amount is not None:
            revenue[key] += item.event.amount
    return {key: (count, revenue[key]) for key, count in counts.items()}


class StreamingMetricsWriter:
    """Adds each batch's per-day, per-type deltas to ``metrics_streaming_daily``."""

    def prepare(self, conn: psycopg2.extensions.connection) -> None:
        """Nothing to prepare: the upsert needs no session state."""

    def encode(self, events: list[Consumed]) -> Deltas:
        return aggregate(events)

    def write(self, cur: Cursor, batch: SinkBatch[Deltas]) -> None:
        deltas = batch.encoded
        execute_values(
            cur,
            "INSERT INTO metrics_streaming_daily AS m (event_date, event_type, total_events, total_amount) VALUES %s"
            " ON CONFLICT (event_date, event_type) DO UPDATE SET"
            " total_events = m.total_events + EXCLUDED.total_events,"
            " total_amount = m.total_amount + EXCLUDED.total_amount, updated_at = now()",
            sorted((day, kind, count, amount) for (day, kind), (count, amount) in deltas.items()),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumers.streaming_metrics",
        description="Maintain metrics_streaming_daily (event count and revenue per UTC day and event type) "
        "from the events topic, exactly once. Stops cleanly on Ctrl+C / SIGTERM.",
    )
    parser.add_argument("--group", help="consumer group (default: STREAMING_GROUP, streaming-metrics)")
    metrics.add_metrics_argument(parser, "consumers.streaming_metrics")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        metrics.serve(settings, "consumers.streaming_metrics", args.metrics_port)
        stop = cli.install_stop_handlers()
        Sink(
            settings, args.group or settings.groups.streaming_metrics, StreamingMetricsWriter(), stop, record_dead_letters=False
        ).run()
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
