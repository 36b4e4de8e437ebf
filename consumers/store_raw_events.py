"""Consumer that stores every valid event once in ``events_raw`` (exactly-once, via core.sink).

Rows are copied straight into ``events_raw``; a batch that meets an event already stored goes
through a staging table and ``INSERT ... ON CONFLICT DO NOTHING``: the offsets make each message
count once, and the key guards against a producer that sent the same event twice. Before anything
is stored, personal data in the metadata (emails, phones, IPs, card numbers, IBANs) is redacted
and counted, and an event of a user who has been erased is stored under a fresh random user id,
never the former one, with the strings of its metadata erased, a fresh random event id and no
Kafka partition or offset (nothing may lead back to its message: sql/034).

``events_raw`` is partitioned by day (sql/021): before a batch is written, the partitions of
today and the week ahead and of its days (at most PARTITIONS_PER_BATCH late ones within the
retention) are created if they are missing (core.partitions); an event whose day still has none
goes to the default partition, until the nightly retention run.
Its key is (event_id, event_date): every copy of an event has the same day, so a resent event
meets the key in its day's partition and is ignored.
"""

from __future__ import annotations

import argparse
import io
from collections import Counter
from datetime import date, datetime
from typing import NamedTuple

import psycopg2.errors
import psycopg2.extensions
from psycopg2.extras import execute_values

from core import cli, locks, metrics, partitions
from core.config import Settings
from core.db import Cursor
from core.pii import METADATA_ENCODER, erase_strings, new_pseudonymous_user_id, redact_metadata, redact_serialised
from core.sink import Consumed, Sink, SinkBatch
from core.sink.metrics import count_redactions

# COPY reads its input in chunks, taking the GIL for each: large chunks keep the writer thread
# from queueing behind the polling thread on every 8 KiB.
COPY_CHUNK = 4 << 20
COLUMNS = "event_id, user_id, event_type, event_timestamp, event_date, amount, metadata, kafka_partition, kafka_offset"
# The statements are built once from the constant column list above; no value is ever formatted in.
COPY_DIRECT = f"COPY events_raw ({COLUMNS}) FROM STDIN WITH (FORMAT csv)"
COPY_STAGE = f"COPY events_stage ({COLUMNS}) FROM STDIN WITH (FORMAT csv)"
# Which of a batch's users have been erased (read through the partial index of sql/025).
ERASED_AMONG = "SELECT user_id::text FROM users_pii WHERE user_id = ANY(%s::uuid[]) AND anonymized_at IS NOT NULL"
INSERT_STAGED = f"INSERT INTO events_raw ({COLUMNS}) SELECT {COLUMNS} FROM events_stage ON CONFLICT DO NOTHING"  # noqa: S608 - constant columns


class RawBatch(NamedTuple):
    """A batch encoded for COPY, with what the transaction needs beside it."""

    csv: str
    redactions: Counter[str]
    user_ids: list[str]
    days: set[date]  # the events' days, each needing its partition of events_raw


class RawEventsWriter:
    """Writes batches of events into ``events_raw``."""

    def __init__(self, retention_days: int, lock_wait_ms: int = locks.DEFAULT_WAIT_MS, partitions_per_batch: int = 8) -> None:
        self.duplicates = 0
        # The longest a batch waits for an erasure (then 55P03, and the batch is retried).
        self.lock_wait_ms = lock_wait_ms
        # A partition of events_raw (sql/021) for today, the week ahead and a few late days per batch.
        self.partitions = partitions.DailyPartitions(retention_days, partitions_per_batch)

    def prepare(self, conn: psycopg2.extensions.connection) -> None:
        with conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS events_stage (LIKE events_raw INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )

    def encode(self, events: list[Consumed]) -> RawBatch:
        """CSV rows with the metadata redacted (CPU only: runs while the previous batch is written)."""
        redactions: Counter[str] = Counter()
        # One scan of the whole batch finds the few events whose metadata needs the redactor;
        # those are redacted value by value (keys stay, a redacted number becomes a string), so
        # what is stored is always valid JSON. The collector redacted them already: what it left
        # as markers is counted again here, so ingest_redactions says what was removed.
        serialised, _ = redact_serialised([c.event.metadata for c in events], redactions)
        if redactions:
            # Counted as the batch is redacted (ingest_redactions, written with the batch, is the
            # exact record: a batch encoded again after a rebalance is counted here twice).
            count_redactions(redactions)
        # Events come in bursts with one timestamp: its two text forms are computed once.
        stamps: dict[datetime, str] = {}
        days: set[date] = set()
        lines = []
        for i, consumed in enumerate(events):
            e = consumed.event
            metadata = serialised[i].decode()
            stamp = stamps.get(e.event_timestamp)
            if stamp is None:
                day = e.event_date
                days.add(day)
                stamp = stamps[e.event_timestamp] = f"{e.event_timestamp.isoformat()},{day.isoformat()}"
            # CSV by hand (2.5x faster than csv.writer here): every field but the metadata is
            # validated to contain no comma, quote or newline; the metadata is quoted.
            amount = "" if e.amount is None else e.amount
            lines.append(
                f"{e.event_id},{e.user_id},{e.event_type},{stamp},"
                f'{amount},"{metadata.replace(chr(34), chr(34) * 2)}",{consumed.partition},{consumed.offset}\n'
            )
        return RawBatch("".join(lines), redactions, sorted({c.event.user_id for c in events}), days)

    def write(self, cur: Cursor, batch: SinkBatch[RawBatch]) -> None:
        events, encoded = batch.events, batch.encoded
        self.partitions(cur, encoded.days)
        # Shared erasure lock: an erasure either committed before this batch (and the check
        # below sees it) or waits until this batch is stored (and re-keys it).
        locks.take(cur, locks.ERASURE, wait_ms=self.lock_wait_ms)
        # The ids go as one array literal: psycopg2 would adapt a list of 50,000 strings one by
        # one, holding the GIL the polling thread needs.
        cur.execute(ERASED_AMONG, ("{" + ",".join(map(str, encoded.user_ids)) + "}",))
        erased = [row[0] for row in cur.fetchall()]
        buffer = io.StringIO(encoded.csv)
        if erased:
            self._write_with_late_events(cur, events, buffer, erased)
        else:
            # Fast path: COPY straight into events_raw. Only when an event id is already stored (a
            # producer that sent an event twice) does the batch go through the staging table.
            cur.execute("SAVEPOINT direct_copy")
            try:
                cur.copy_expert(COPY_DIRECT, buffer, size=COPY_CHUNK)
            except psycopg2.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT direct_copy")
                buffer.seek(0)
                cur.copy_expert(COPY_STAGE, buffer)
                cur.execute(INSERT_STAGED)
                self.duplicates += len(events) - cur.rowcount
            else:
                cur.execute("RELEASE SAVEPOINT direct_copy")
        if encoded.redactions:
            execute_values(
                cur,
                "INSERT INTO ingest_redactions AS r (day, kind, redactions) VALUES %s ON CONFLICT (day, kind)"
                " DO UPDATE SET redactions = r.redactions + EXCLUDED.redactions",
                sorted(encoded.redactions.items()),
                template="((now() AT TIME ZONE 'UTC')::date, %s, %s)",
            )

    def _write_with_late_events(self, cur: Cursor, events: list[Consumed], buffer: io.StringIO, erased: list[str]) -> None:
        """A batch with late events of erased users goes through the staging table, where each
        of those gets, before anything is visible, a fresh pseudonym of its own, its metadata's
        strings erased (the person's own values are no longer known to scrub), a fresh random
        event id and no Kafka partition or offset: nothing stored leads to its message, whose key
        is the former user id (sql/034). The guard against a copy sent twice is the digest of the
        former event id (erased_event_digests, which the erasure fills for the events it re-keys):
        a copy already stored is dropped, and so is a second copy within the batch."""
        erased_ids = set(erased)
        # Empty, unless a part of this transaction's batch was written before (the sink writes a
        # refused batch again in halves, each under a savepoint): those rows are stored already.
        cur.execute("DELETE FROM events_stage")
        cur.copy_expert(COPY_STAGE, buffer, size=COPY_CHUNK)
        cur.execute(
            "DELETE FROM events_stage AS s USING erased_event_digests AS g WHERE s.user_id = ANY(%s::uuid[])"
            " AND g.event_digest = sha256(uuid_send(s.event_id)) AND g.event_date = s.event_date",
            (erased,),
        )
        cur.execute(
            "DELETE FROM events_stage AS a USING events_stage AS b WHERE a.user_id = ANY(%s::uuid[])"
            " AND a.event_id = b.event_id AND a.event_date = b.event_date AND a.ctid > b.ctid",
            (erased,),
        )
        cur.execute(
            "INSERT INTO erased_event_digests (event_digest, event_date) SELECT sha256(uuid_send(event_id)), event_date"
            " FROM events_stage WHERE user_id = ANY(%s::uuid[]) ON CONFLICT DO NOTHING",
            (erased,),
        )
        # The strings are erased in the redacted metadata, never the raw one: a number that is
        # personal data as a whole (a card number sent as a JSON integer) is a number to
        # erase_strings, which keeps numbers, and only the redactor turns it into a marker; keys,
        # too, are redacted only there. (Redacted again here, with the counts thrown away: encode
        # counted this batch already.)
        late = [c.event for c in events if c.event.user_id in erased_ids]
        cur.execute(
            "UPDATE events_stage AS s SET event_id = gen_random_uuid(), user_id = v.new, metadata = v.metadata,"
            " kafka_partition = NULL, kafka_offset = NULL"
            " FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::jsonb[]) AS v (event_id, user_id, new, metadata)"
            " WHERE s.event_id = v.event_id AND s.user_id = v.user_id",
            (
                [e.event_id for e in late],
                [e.user_id for e in late],
                [new_pseudonymous_user_id() for _ in late],
                [METADATA_ENCODER.encode(erase_strings(redact_metadata(e.metadata, Counter()))).decode() for e in late],
            ),
        )
        cur.execute(INSERT_STAGED)
        self.duplicates += len(events) - cur.rowcount


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumers.store_raw_events",
        description="Store every valid event from the events topic in events_raw, exactly once. "
        "Invalid events go to dead_letter_events with the reason. Stops cleanly on Ctrl+C / SIGTERM.",
    )
    parser.add_argument("--group", help="consumer group (default: RAW_EVENTS_GROUP, raw-events-sink)")
    metrics.add_metrics_argument(parser, "consumers.store_raw_events")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        metrics.serve(settings, "consumers.store_raw_events", args.metrics_port)
        writer = RawEventsWriter(
            settings.retention.raw_event_days, locks.wait_ms_for(settings.database), settings.partitions_per_batch
        )
        Sink(settings, args.group or settings.groups.raw_events, writer, cli.install_stop_handlers()).run()
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
