"""The one sink mechanism both consumers share: exactly-once from Kafka into PostgreSQL.

Each batch ("N records or T seconds") is written together with the next offset of every
partition it covers, in ONE PostgreSQL transaction. Offsets are never committed to Kafka; on
assignment the consumer starts from the offsets stored in PostgreSQL. Inside the transaction
the stored offsets are locked and every message below them is dropped, so even a stale
instance that still holds a revoked partition can never write a message twice.

A writer only says what a batch of valid events becomes (raw rows, metric deltas); polling,
validation, dead-lettering, offsets, retries and shutdown live here, once. Dead letters are
recorded by the sink that is the system of record (the raw-events consumer); the others skip
invalid messages and count them.
"""

from __future__ import annotations

import functools
import gc
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar

import msgspec
import psycopg2
import psycopg2.extensions
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from psycopg2.extras import execute_values

from core import db, kafka
from core.config import Settings
from core.errors import PlatformError
from core.events import Event, InvalidEvent, parse_event, redact_payload

logger = logging.getLogger(__name__)

Cursor = db.Cursor
T = TypeVar("T")
# Reconnecting to PostgreSQL: start quickly, back off to at most 10 s between attempts.
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 10.0
PROGRESS_EVERY_S = 10.0
# consumer_batches feeds the status command's events/s; an hour of history is plenty.
BATCH_HISTORY = "1 hour"
PRUNE_EVERY_BATCHES = 500
# A full garbage collection this often; every batch gets a young-generation one (see run).
FULL_GC_EVERY_BATCHES = 50


class Consumed(msgspec.Struct, frozen=True, gc=False):
    """A valid event and where it came from. Built once per event: a msgspec Struct's C
    constructor costs a tenth of a NamedTuple's."""

    event: Event
    partition: int
    offset: int


class DeadLetter(NamedTuple):
    """A message that failed validation."""

    partition: int
    offset: int
    reason: str
    payload: str


class SinkWriter(Protocol):
    """What a consumer writes. ``encode`` does a batch's CPU work in the polling thread while the
    previous batch is being written; ``write`` runs inside the sink's transaction."""

    def prepare(self, conn: psycopg2.extensions.connection) -> None:
        """Once per connection (temporary tables, prepared statements)."""

    def encode(self, events: list[Consumed]) -> Any:
        """Turn a batch of valid events into what ``write`` sends; no database access."""

    def write(self, cur: Cursor, events: list[Consumed], encoded: Any) -> None:
        """Write one encoded batch with ``cur``; never commit."""


class OffsetsBeyondLog(PlatformError):
    """PostgreSQL remembers more of a partition than the broker holds: the topic was recreated."""


@dataclass
class SinkStats:
    """Counts since start, for progress lines and for callers."""

    events: int = 0
    dead_letters: int = 0
    skipped_already_done: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)


class Sink:
    """Consume ``settings.kafka.topic`` as ``group_id`` and hand valid events to ``writer``."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        writer: SinkWriter,
        stop: threading.Event,
        *,
        record_dead_letters: bool = True,
    ) -> None:
        self.settings = settings
        self.record_dead_letters = record_dead_letters
        self.group_id = group_id
        self.topic = settings.kafka.topic
        self.writer = writer
        self.stop = stop
        self.stats = SinkStats()
        self._conn: psycopg2.extensions.connection | None = None
        self._consumer: Consumer | None = None
        # Pipelining: the polling thread decodes and encodes batch N+1 while the writer thread
        # writes batch N. One batch waits at most, so memory stays bounded.
        self._pending: queue.Queue[tuple[list[Consumed], list[DeadLetter], Any] | None] = queue.Queue(maxsize=1)
        self._writer_error: BaseException | None = None

    # -- PostgreSQL -------------------------------------------------------------------------

    def _open_connection(self) -> psycopg2.extensions.connection:
        conn = db.connect(self.settings.database, application_name=self.group_id, role=db.INGEST_ROLE)
        with conn, conn.cursor() as cur:
            # Safe here, and it removes the WAL flush wait from every batch: a commit lost in a
            # PostgreSQL crash loses its rows AND its offsets together, so the batch is simply
            # consumed again from Kafka. Exactly-once needs atomicity, not synchronous durability.
            cur.execute("SET synchronous_commit TO off")
        return conn

    def _connection(self) -> psycopg2.extensions.connection:
        """The open connection, reconnecting with backoff while PostgreSQL is away."""
        delay = RETRY_INITIAL_S
        while self._conn is None or self._conn.closed:
            try:
                self._conn = self._open_connection()
                self.writer.prepare(self._conn)
            except PlatformError as e:
                if self.stop.is_set():
                    raise
                logger.warning("%s; retrying in %.1f s", e, delay)
                self.stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        return self._conn

    def stored_offsets(self, partitions: list[int]) -> dict[int, int]:
        """Next offset per partition as recorded in PostgreSQL (absent: never consumed)."""

        def read() -> dict[int, int]:
            conn = self._connection()
            with conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT partition, next_offset FROM consumer_offsets"
                    " WHERE consumer_group = %s AND topic = %s AND partition = ANY(%s)",
                    (self.group_id, self.topic, partitions),
                )
                return dict(cur.fetchall())

        return self._with_retry("reading stored offsets", read)

    def _with_retry(self, what: str, action: Callable[[], T]) -> T:
        """Run ``action`` until it succeeds, waiting out PostgreSQL outages with backoff.

        Every action is one transaction, rolled back on failure, so retrying it is safe. A stop
        request during an outage ends the wait: the work is redone from the stored offsets.
        """
        delay = RETRY_INITIAL_S
        while True:
            try:
                return action()
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                # Transient: connection lost, server restarting, deadlock, serialization failure.
                # Anything else (a permission, a constraint) would fail the same way forever and
                # is raised instead.
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                logger.warning("PostgreSQL failed while %s (%s); retrying in %.1f s", what, reason, delay)
                if self._conn is not None and not self._conn.closed:
                    try:
                        self._conn.rollback()
                    except psycopg2.Error:
                        self._conn.close()
                if self.stop.is_set():
                    raise PlatformError(f"stopped while PostgreSQL was unavailable ({what}); nothing of it was stored") from e
                self.stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    # -- Kafka callbacks --------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain()
        stored = self.stored_offsets([p.partition for p in partitions])
        self._check_offsets_within_log(consumer, stored)
        for tp in partitions:
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        consumer.assign(partitions)
        logger.info(
            "assigned %s from PostgreSQL offsets %s",
            self.topic,
            {tp.partition: stored.get(tp.partition, "beginning") for tp in partitions},
        )

    def _check_offsets_within_log(self, consumer: Consumer, stored: dict[int, int]) -> None:
        """Refuse to start from offsets the broker does not have: the topic was recreated and
        starting over would silently drop its new messages below the stored offsets."""
        suspicious = {
            p: offset
            for p, offset in stored.items()
            if offset > consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=kafka.REACHABLE_TIMEOUT_S)[1]
        }
        if not suspicious:
            return
        # The reported watermark can be short of the real end (Tansu); check the real end.
        ends = kafka.end_offsets(self.settings.kafka, self.topic)
        beyond = {p: offset for p, offset in suspicious.items() if offset > ends.get(p, 0)}
        if beyond:
            raise OffsetsBeyondLog(
                f"PostgreSQL says {self.group_id} consumed {self.topic} up to offsets {beyond} but the broker ends at "
                f"{ {p: ends.get(p, 0) for p in beyond} }: the topic was recreated (the embedded broker keeps topics in "
                "memory). `make up` resets the stored offsets of a fresh topic."
            )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Batches in flight are committed before the partitions go to another instance.
        self._drain()
        logger.info("revoked %s partitions %s", self.topic, [tp.partition for tp in partitions])
        consumer.unassign()

    # -- one batch --------------------------------------------------------------------------

    def _split(self, messages: list[Message]) -> tuple[list[Consumed], list[DeadLetter]]:
        valid: list[Consumed] = []
        dead: list[DeadLetter] = []
        now = datetime.now(UTC)  # once per batch: the plausibility bound for timestamps
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("kafka: %s", error)
                continue
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:  # only error messages lack them
                continue
            try:
                valid.append(Consumed(parse_event(message.value(), now), partition, offset))
            except InvalidEvent as e:
                dead.append(DeadLetter(partition, offset, e.reason, redact_payload(message.value())))
        return valid, dead

    def _commit_batch(self, valid: list[Consumed], dead: list[DeadLetter], encoded: Any) -> None:
        """Rows, dead letters and offsets in one transaction, fenced by the stored offsets."""
        first: dict[int, int] = {}
        last: dict[int, int] = defaultdict(lambda: -1)
        for partition, offset in [(c.partition, c.offset) for c in valid] + [(d.partition, d.offset) for d in dead]:
            first[partition] = min(first.get(partition, offset), offset)
            last[partition] = max(last[partition], offset)
        partitions = sorted(first)
        conn = self._connection()
        with conn, conn.cursor() as cur:
            execute_values(
                cur,
                "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES %s ON CONFLICT DO NOTHING",
                [(self.group_id, self.topic, p, first[p]) for p in partitions],
            )
            cur.execute(
                "SELECT partition, next_offset FROM consumer_offsets"
                " WHERE consumer_group = %s AND topic = %s AND partition = ANY(%s)"
                " ORDER BY partition FOR UPDATE",
                (self.group_id, self.topic, partitions),
            )
            stored: dict[int, int] = dict(cur.fetchall())
            gaps = [p for p in partitions if first[p] > stored[p]]
            if gaps:
                self._rewind({p: stored[p] for p in gaps})
            done = set(gaps)
            fresh_valid = [c for c in valid if c.partition not in done and c.offset >= stored[c.partition]]
            fresh_dead = [d for d in dead if d.partition not in done and d.offset >= stored[d.partition]]
            skipped = len(valid) + len(dead) - len(fresh_valid) - len(fresh_dead)
            if fresh_valid:
                # Rarely (after a rebalance) part of the batch was already stored: encode the rest anew.
                self.writer.write(
                    cur, fresh_valid, encoded if len(fresh_valid) == len(valid) else self.writer.encode(fresh_valid)
                )
            if fresh_dead and self.record_dead_letters:
                execute_values(
                    cur,
                    "INSERT INTO dead_letter_events (consumer_group, topic, kafka_partition, kafka_offset, reason, payload)"
                    " VALUES %s",
                    [(self.group_id, self.topic, d.partition, d.offset, d.reason, d.payload) for d in fresh_dead],
                )
            cur.execute(
                "INSERT INTO consumer_batches (consumer_group, topic, events, dead_letters) VALUES (%s, %s, %s, %s)",
                (self.group_id, self.topic, len(fresh_valid), len(fresh_dead)),
            )
            if self.stats.batches % PRUNE_EVERY_BATCHES == 0:
                cur.execute(
                    "DELETE FROM consumer_batches WHERE consumer_group = %s AND committed_at < now() - %s::interval",
                    (self.group_id, BATCH_HISTORY),
                )
            advanced = [
                (self.group_id, self.topic, p, last[p] + 1) for p in partitions if p not in done and last[p] + 1 > stored[p]
            ]
            if advanced:
                execute_values(
                    cur,
                    "UPDATE consumer_offsets AS c SET next_offset = v.next_offset, updated_at = now()"
                    " FROM (VALUES %s) AS v (consumer_group, topic, partition, next_offset)"
                    " WHERE c.consumer_group = v.consumer_group AND c.topic = v.topic AND c.partition = v.partition",
                    advanced,
                )
        self.stats.events += len(fresh_valid)
        self.stats.dead_letters += len(fresh_dead)
        self.stats.skipped_already_done += skipped
        self.stats.batches += 1
        if skipped:
            logger.info("skipped %d messages another instance had already stored", skipped)

    def _rewind(self, positions: dict[int, int]) -> None:
        """Seek partitions back to the stored offsets so no message is ever skipped."""
        if self._consumer is None:
            return
        for partition, offset in positions.items():
            logger.warning("%s[%d]: batch starts past the stored offset %d; rewinding", self.topic, partition, offset)
            self._consumer.seek(TopicPartition(self.topic, partition, offset))

    def _process(self, messages: list[Message]) -> None:
        valid, dead = self._split(messages)
        if valid or dead:
            encoded = self.writer.encode(valid) if valid else None
            self._raise_writer_error()
            self._pending.put((valid, dead, encoded))

    def _write_batches(self) -> None:
        """The writer thread: one transaction per batch, in order."""
        while True:
            item = self._pending.get()
            try:
                if item is None:
                    return
                if self._writer_error is None:
                    valid, dead, encoded = item
                    # The transaction rolled back on failure: nothing of the batch is stored, so
                    # the same batch is retried once PostgreSQL is back; the offset fence makes it safe.
                    self._with_retry("writing a batch", functools.partial(self._commit_batch, valid, dead, encoded))
            except BaseException as e:  # handed to the polling thread, which raises it
                self._writer_error = e
                self.stop.set()
            finally:
                self._pending.task_done()

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            raise self._writer_error

    def _drain(self) -> None:
        """Wait until every batch handed to the writer is committed."""
        self._pending.join()
        self._raise_writer_error()

    # -- the loop ---------------------------------------------------------------------------

    def _log_progress(self) -> None:
        elapsed = max(time.monotonic() - self.stats.started, 1e-9)
        logger.info(
            "%s: %d events stored (%.0f/s), %d dead letters, %d batches",
            self.group_id,
            self.stats.events,
            self.stats.events / elapsed,
            self.stats.dead_letters,
            self.stats.batches,
        )

    def run(self) -> SinkStats:
        """Consume until the stop flag is set; the last batch is committed before returning."""
        # At start-up a missing service is an error the user should see at once; once
        # running, an outage is waited out (see _connection and _process).
        self._conn = self._open_connection()
        self.writer.prepare(self._conn)
        kafka.ensure_reachable(self.settings.kafka)
        self._consumer = kafka.consumer(self.settings.kafka, self.group_id)
        batch_size, batch_seconds = self.settings.sink.batch_size, self.settings.sink.batch_seconds
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        logger.info("%s consuming %s (batches of %d or %.1f s)", self.group_id, self.topic, batch_size, batch_seconds)
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        writer = threading.Thread(target=self._write_batches, name=f"{self.group_id}-writer", daemon=True)
        writer.start()
        # Automatic cyclic garbage collection runs every few hundred allocations and rescans the
        # whole batch in flight each time: 15 % of a consumer's CPU. Batches hold no reference
        # cycles, so it is switched off and done once per batch instead (young objects only,
        # everything now and then), which keeps memory bounded at a fraction of the cost.
        gc.collect()
        gc.freeze()
        gc.disable()
        polled = 0
        try:
            while not self.stop.is_set():
                self._process(self._consumer.consume(num_messages=batch_size, timeout=batch_seconds))
                polled += 1
                gc.collect(2 if polled % FULL_GC_EVERY_BATCHES == 0 else 0)
                if time.monotonic() >= next_progress:
                    self._log_progress()
                    next_progress = time.monotonic() + PROGRESS_EVERY_S
        finally:
            gc.enable()
            self._pending.put(None)
            writer.join()
            self._consumer.close()
            if self._conn is not None:
                self._conn.close()
        self._raise_writer_error()
        self._log_progress()
        return self.stats


def lag(settings: Settings, group_id: str, topic: str | None = None) -> dict[int, int]:
    """Messages per partition not yet stored by ``group_id``: end offset minus stored offset."""
    name = topic or settings.kafka.topic
    ends = kafka.end_offsets(settings.kafka, name)
    with db.connection(settings.database, application_name="lag") as conn, conn, conn.cursor() as cur:
        cur.execute(
            "SELECT partition, next_offset FROM consumer_offsets WHERE consumer_group = %s AND topic = %s",
            (group_id, name),
        )
        stored = dict(cur.fetchall())
    return {p: end - stored.get(p, 0) for p, end in ends.items()}
