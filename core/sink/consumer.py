"""The sink loop both consumers share: exactly-once from Kafka into PostgreSQL.

Each batch ("N records or T seconds") is written together with the next offset of every
partition it covers, in ONE PostgreSQL transaction. Offsets are never committed to Kafka; on
assignment the consumer starts from the offsets stored in PostgreSQL. The loop polls,
validates and hands typed batches to a writer thread; the checkpoint (core.sink.checkpoint)
owns the fence and the offsets, the writer (core.sink.writer) only writes.

Failures, by kind:
- an invalid message: a dead letter with its reason (the raw-events sink records them);
- an event the database refuses (SQLSTATE class 22 or 23): the batch is bisected under
  savepoints, the refused events are dead-lettered with the database's reason, the rest is
  stored, all in one transaction;
- a transient database failure (connection lost, serialization failure, deadlock): retried
  with backoff for at most ``DB_RETRY_TIMEOUT_S``, then the consumer stops with exit status 2;
- a statement timeout: the batch is split and the halves committed one after the other; a
  batch that still times out stops the consumer with a message naming the timeout;
- a lost broker: said in the log and in ``consumers.status`` until it answers again.

Metrics (core.sink.metrics): consumed, stored, dead-lettered and dropped events, batch sizes,
commit times, freshness and lag per partition, updated once per batch or once a second, never
per event; served when the consumer runs with ``--metrics-port`` (core.metrics).

Consent (core.consent): before a batch is decided the consent ledger is read again, and a
valid event whose user had no analytics consent at the event's time is dropped: neither
written nor aggregated, only counted per day and reason in ``consent_dropped_daily``, in the
batch's transaction. Both consumers decide alike, so what the raw events hold is what the
streaming metrics counted.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

import msgspec
import psycopg2
import psycopg2.extensions
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from psycopg2.extras import execute_values

from core import db, kafka, progress
from core.config import Settings
from core.consent import ConsentLedger
from core.errors import PlatformError
from core.events import EARLIEST_EVENT, MAX_CLOCK_SKEW, Event, InvalidEvent, parse_event
from core.pii import metadata_refusal, redact_payload
from core.sink.batch import Consumed, DeadLetter, Dropped, Polled, SinkBatch
from core.sink.checkpoint import Checkpoint, Fence
from core.sink.metrics import SinkMetrics
from core.sink.retry import database_policy, with_retry
from core.sink.writer import SinkWriter

logger = logging.getLogger(__name__)

E = TypeVar("E")
T = TypeVar("T")
Cursor = db.Cursor
PROGRESS_EVERY_S = 10.0
# A full garbage collection this often; every batch gets a young-generation one (see run).
FULL_GC_EVERY_BATCHES = 50
# How often a running instance says it is alive (and whether it reaches its broker).
HEARTBEAT_EVERY_S = 5.0
# How often each assigned partition's lag is worked out for the metrics (from the high watermark
# librdkafka keeps, no request to the broker): Prometheus scrapes every 15 s.
LAG_EVERY_S = 1.0
# How long one consume call waits for messages while a batch fills: the latency added at low load.
POLL_SLICE_S = 0.005
# A batch closes early (the writer free) only when the consumer is caught up: no partition has
# more than this many messages waiting after the newest one polled. Live traffic keeps a few
# hundred in flight; a backlog is drained in full-size batches, the fastest way.
BEHIND_SLACK = 2_000
# How many of the newest polled messages are looked at to find each partition's position.
BEHIND_SCAN = 5_000
# A batch that hits the statement timeout is halved at most this often (1/8 of it) before the
# consumer gives up and says so: a timeout that survives that is a lock or an overload.
MAX_TIMEOUT_SPLITS = 3
# Reason recorded for an event whose metadata is over a bound of METADATA_MAX_* (core.pii).
TOO_LARGE_REASON = "too_large"
# Reason recorded for an event the database refused; ``detail`` holds the database's words.
REFUSED_REASON = "refused_by_database"
# Reason recorded for an event whose parsing failed in a way the event model did not foresee.
UNPARSEABLE_REASON = "unparseable"
# Stored instead of a payload that could not be redacted: nothing unredacted is ever written.
WITHHELD_PAYLOAD = "[payload withheld: it could not be redacted]"
# librdkafka's way of saying no broker can be reached (resolution failure included).
BROKER_DOWN_CODES = (KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE)
_PAYLOAD_ENCODER = msgspec.json.Encoder(decimal_format="number")


class OffsetsBeyondLog(PlatformError):
    """PostgreSQL remembers more of a partition than the broker holds: the topic was recreated."""


class StatementTimeout(PlatformError):
    """A batch kept hitting the statement timeout even when split."""


class StoreFailed(PlatformError):
    """PostgreSQL refused a batch for a reason that is neither its data nor passing."""


@dataclass
class SinkStats:
    """Counts since start, for progress lines and for callers."""

    events: int = 0
    dead_letters: int = 0
    refused: int = 0
    dropped: int = 0
    skipped_already_done: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)


def produced_between(messages: list[Message], now: datetime | None = None) -> tuple[int, int] | None:
    """The Kafka timestamps (ms) of the oldest and the newest message, None when none has a
    plausible one. A producer sets the timestamp it likes (-1, 0, 9e18 ms, ...): one outside the
    events' own plausible range (core.events) says nothing of freshness and is left out, so no
    such value ever reaches the bookkeeping (one once stopped both consumers for good)."""
    earliest, latest = plausible_ms(now or datetime.now(UTC))
    stamps = [
        stamp
        for kind, stamp in (m.timestamp() for m in messages)
        if kind != TIMESTAMP_NOT_AVAILABLE and earliest <= stamp <= latest
    ]
    return (min(stamps), max(stamps)) if stamps else None


def plausible_ms(now: datetime) -> tuple[int, int]:
    """The range of Kafka timestamps (ms) taken as a production time: that of event timestamps."""
    return int(EARLIEST_EVENT.timestamp() * 1000), int((now + MAX_CLOCK_SKEW).timestamp() * 1000)


@dataclass(frozen=True)
class _Heartbeat:
    broker_ok: bool


def _printable(payload: bytes | None) -> str:
    """The redacted payload for a dead letter; withheld if redaction itself fails."""
    try:
        return redact_payload(payload)
    except Exception as e:
        logger.error("could not redact a dead-lettered payload (%s); it is withheld", defect(e))
        return WITHHELD_PAYLOAD


def defect(error: BaseException) -> str:
    """Where an unforeseen exception came from, without its message (which may quote data)."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{type(error).__name__} at {frames[-1].filename}:{frames[-1].lineno}" if frames else type(error).__name__


def event_payload(event: Event) -> bytes:
    """The event as JSON again, for the dead letter of an event the database refused."""
    return _PAYLOAD_ENCODER.encode(
        {
            "event_id": event.event_id,
            "user_id": event.user_id,
            "event_type": event.event_type,
            "event_timestamp": event.event_timestamp.isoformat(),
            "amount": event.amount,
            "metadata": event.metadata,
        }
    )


class Sink(Generic[E]):
    """Consume ``settings.kafka.topic`` as ``group_id`` and hand typed batches to ``writer``."""

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        writer: SinkWriter[E],
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
        self.metrics = SinkMetrics(group_id)
        # The next offset to commit of each assigned partition (None: it starts at the log's
        # beginning and nothing is committed yet), for its lag: set on assignment by the polling
        # thread, advanced after each commit by the writer thread.
        self._positions: dict[int, int | None] = {}
        self.checkpoint = Checkpoint(group_id, self.topic)
        self.retry = database_policy(settings.database.retry_timeout_s)
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self._conn: psycopg2.extensions.connection | None = None
        self._consumer: Consumer | None = None
        # The polling thread decides consent with a ledger it reads through a connection of its
        # own (the writer thread's is busy writing the previous batch).
        self.consent = ConsentLedger(settings.consent_mode)
        self._consent_conn: psycopg2.extensions.connection | None = None
        # Pipelining: the polling thread decodes and encodes batch N+1 while the writer thread
        # writes batch N. One batch waits at most, so memory stays bounded.
        self._pending: queue.Queue[Polled[E] | _Heartbeat | None] = queue.Queue(maxsize=1)
        # Whether the writer thread is in a transaction (read by the polling thread to close a
        # batch early: see _poll).
        self._writing = False
        self._writer_error: BaseException | None = None
        self._broker_lost_at: float | None = None
        self._last_beat = 0.0  # monotonic time of the last heartbeat recorded
        self._broker_said_lost = False

    # -- PostgreSQL -------------------------------------------------------------------------

    def _open_connection(self) -> psycopg2.extensions.connection:
        conn = db.connect(self.settings.database, application_name=self.group_id, role=db.INGEST_ROLE)
        with conn, conn.cursor() as cur:
            # Safe here, and it removes the WAL flush wait from every batch: a commit lost in a
            # PostgreSQL crash loses its rows AND its offsets together, so the batch is simply
            # consumed again from Kafka. Exactly-once needs atomicity, not synchronous durability.
            cur.execute("SET synchronous_commit TO off")
        self.writer.prepare(conn)
        return conn

    def _refused(self, what: str, error: psycopg2.Error) -> PlatformError:
        """The one-line error that stops the consumer when PostgreSQL refuses ``what`` for a reason
        that is not passing, classified as a batch's refusal is: a statement timeout names the
        setting, anything else its SQLSTATE (never the error's text, which may quote a row)."""
        if db.is_statement_timeout(error):
            timeout_ms = self.settings.database.statement_timeout_ms
            return StatementTimeout(
                f"{what} hit the statement timeout (DB_STATEMENT_TIMEOUT_MS={timeout_ms}): PostgreSQL is overloaded or a "
                "lock is held (see pg_stat_activity). Nothing was stored; a restart resumes from the stored offsets. "
                "Raise DB_STATEMENT_TIMEOUT_MS or end what holds the lock."
            )
        return StoreFailed(
            f"PostgreSQL refused {what} ({db.describe_error(error)}); nothing was stored and the offsets stay where they "
            "were: fix the cause and restart to resume"
        )

    def _connection(self) -> psycopg2.extensions.connection:
        """The open connection; a closed one is reopened (failures are the retry's to handle)."""
        if self._conn is None or self._conn.closed:
            self._conn = self._open_connection()
        return self._conn

    def _reset_connection(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                self._conn.rollback()
            except psycopg2.Error:
                self._conn.close()

    def _transaction(self, what: str, action: Callable[[Cursor], T]) -> T:
        """``action`` in one transaction, retried while the failure is transient."""

        def attempt() -> T:
            conn = self._connection()
            with conn, conn.cursor() as cur:
                return action(cur)

        return with_retry(
            what,
            attempt,
            policy=self.retry,
            stop=self.stop,
            reset=self._reset_connection,
            where=self.settings.database.display_url,
        )

    def _reset_consent_connection(self) -> None:
        if self._consent_conn is not None and not self._consent_conn.closed:
            self._consent_conn.close()
        self._consent_conn = None

    def _refresh_consent(self) -> None:
        """Read the consent changes recorded since the last batch (polling thread)."""

        def attempt() -> int:
            if self._consent_conn is None or self._consent_conn.closed:
                self._consent_conn = db.connect(
                    self.settings.database, application_name=f"{self.group_id}-consent", role=db.INGEST_ROLE
                )
            with self._consent_conn, self._consent_conn.cursor() as cur:
                return self.consent.refresh(cur)

        try:
            with_retry(
                "reading the consent ledger",
                attempt,
                policy=self.retry,
                stop=self.stop,
                reset=self._reset_consent_connection,
                where=self.settings.database.display_url,
            )
        except psycopg2.Error as e:
            if db.is_statement_timeout(e):
                raise self._refused("reading the consent ledger", e) from None
            raise StoreFailed(
                f"PostgreSQL refused to read the consent ledger ({db.describe_error(e)}): nothing was stored and the "
                "offsets stay where they were; if the ledger or its grants are missing, apply the migrations "
                "(`python -m core.db`), then restart"
            ) from None

    def stored_offsets(self, partitions: list[int]) -> dict[int, int]:
        """Next offset per partition as recorded in PostgreSQL (absent: never consumed)."""
        try:
            return self._transaction("reading stored offsets", lambda cur: self.checkpoint.stored(cur, partitions))
        except psycopg2.Error as e:
            raise self._refused("reading the stored offsets", e) from None

    # -- Kafka callbacks --------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._drain()
        stored = self.stored_offsets([p.partition for p in partitions])
        self._check_offsets_within_log(consumer, stored)
        for tp in partitions:
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
            self._positions[tp.partition] = stored.get(tp.partition)
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
        revoked = [tp.partition for tp in partitions]
        for partition in revoked:
            self._positions.pop(partition, None)
        self.metrics.revoked(revoked)
        logger.info("revoked %s partitions %s", self.topic, revoked)
        consumer.unassign()

    def _on_kafka_error(self, error: KafkaError) -> None:
        kafka.log_client_error(error)
        if error.code() in BROKER_DOWN_CODES and self._broker_lost_at is None:
            self._broker_lost_at = time.monotonic()

    # -- one batch --------------------------------------------------------------------------

    def _split(self, messages: list[Message]) -> tuple[list[Consumed], list[DeadLetter], list[Dropped]]:
        valid: list[Consumed] = []
        dead: list[DeadLetter] = []
        dropped: list[Dropped] = []
        decide = self.consent.decide
        settled, horizon = self.consent.fast_path()
        now = datetime.now(UTC)  # once per batch: the plausibility bound for timestamps
        limits = self.settings.metadata_limits
        max_amount = self.settings.max_event_amount
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
                payload = message.value()
                event = parse_event(payload, now, max_amount)
                # Bounded redaction work per event (core.pii): both consumers decide alike.
                if event.metadata and (refusal := metadata_refusal(event.metadata, limits, payload)):
                    raise InvalidEvent(TOO_LARGE_REASON, refusal)
                # Most events are of users whose one grant is long past: a set probe, inline.
                if (event.event_timestamp >= horizon and event.user_id in settled) or (
                    reason := decide(event.user_id, event.event_timestamp)
                ) is None:
                    valid.append(Consumed(event, partition, offset))
                else:
                    dropped.append(Dropped(partition, offset, event.event_date, reason))
            except InvalidEvent as e:
                detail = e.detail if e.reason == TOO_LARGE_REASON else None
                dead.append(DeadLetter(partition, offset, e.reason, _printable(message.value()), detail))
            except Exception as e:  # a defect of ours must cost one event, never the stream
                logger.error("could not parse the event at %s[%d]@%d: %s", self.topic, partition, offset, defect(e))
                dead.append(DeadLetter(partition, offset, UNPARSEABLE_REASON, _printable(message.value()), type(e).__name__))
        return valid, dead, dropped

    def _write_isolating(self, cur: Cursor, events: list[Consumed]) -> list[DeadLetter]:
        """Write ``events``, finding the ones the database refuses by bisection under savepoints;
        return them as dead letters. What is written stays in the caller's transaction."""
        cur.execute("SAVEPOINT sink_isolate")
        try:
            self.writer.write(cur, SinkBatch(events, self.writer.encode(events)))
        except psycopg2.Error as e:
            if not db.is_data_error(e):
                raise
            cur.execute("ROLLBACK TO SAVEPOINT sink_isolate")
            cur.execute("RELEASE SAVEPOINT sink_isolate")
            if len(events) == 1:
                c = events[0]
                return [
                    DeadLetter(c.partition, c.offset, REFUSED_REASON, _printable(event_payload(c.event)), db.describe_error(e))
                ]
            middle = len(events) // 2
            return self._write_isolating(cur, events[:middle]) + self._write_isolating(cur, events[middle:])
        cur.execute("RELEASE SAVEPOINT sink_isolate")
        return []

    def _write_dead_letters(self, cur: Cursor, dead: list[DeadLetter]) -> None:
        execute_values(
            cur,
            "INSERT INTO dead_letter_events (consumer_group, topic, kafka_partition, kafka_offset, reason, payload, detail)"
            " VALUES %s",
            [(self.group_id, self.topic, d.partition, d.offset, d.reason, d.payload, d.detail) for d in dead],
        )

    def _count_dropped(self, cur: Cursor, polled: Polled[E]) -> None:
        execute_values(
            cur,
            "INSERT INTO consent_dropped_daily AS d (consumer_group, event_date, reason, dropped_events) VALUES %s"
            " ON CONFLICT (consumer_group, event_date, reason)"
            " DO UPDATE SET dropped_events = d.dropped_events + EXCLUDED.dropped_events, updated_at = now()",
            sorted((self.group_id, day, reason, n) for (day, reason), n in polled.dropped_counts().items()),
        )

    def _commit(self, polled: Polled[E], cur: Cursor, *, isolate: bool) -> tuple[Fence, Polled[E], list[DeadLetter]]:
        """Rows, dead letters and offsets of one batch in the caller's transaction."""
        fence = self.checkpoint.open(cur, polled.positions())
        fresh = fence.fresh(polled)
        refused: list[DeadLetter] = []
        if fresh.valid:
            if isolate:
                refused = self._write_isolating(cur, fresh.valid)
            else:
                # Rarely (after a rebalance or a split) the encoding must be made anew.
                encoded = fresh.encoded if fresh.encoded is not None else self.writer.encode(fresh.valid)
                self.writer.write(cur, SinkBatch(fresh.valid, encoded))
        if self.record_dead_letters and (fresh.dead or refused):
            self._write_dead_letters(cur, fresh.dead + refused)
        if fresh.dropped:
            self._count_dropped(cur, fresh)
        # Telemetry counts every valid event handled, stored or dropped for lack of consent: the
        # status command's events/s is the consumer's pace, whatever the share of consent.
        self.checkpoint.commit(
            cur, fence, len(fresh.valid) - len(refused) + len(fresh.dropped), len(fresh.dead) + len(refused), fresh.produced
        )
        return fence, fresh, refused

    def _store(self, polled: Polled[E], depth: int = 0) -> None:
        """Commit one batch, whatever the database says about it (see the module docstring)."""
        started = time.perf_counter()
        try:
            try:
                outcome = self._transaction("writing a batch", lambda cur: self._commit(polled, cur, isolate=False))
            except psycopg2.Error as e:
                if not db.is_data_error(e):
                    raise
                logger.warning(
                    "the database refused a batch of %d events (%s); isolating the refused events", len(polled), e.pgcode
                )
                outcome = self._transaction("writing a batch", lambda cur: self._commit(polled, cur, isolate=True))
        except psycopg2.Error as e:
            if db.is_statement_timeout(e):
                self._store_split(polled, depth, e)
                return
            # Neither the data nor a passing fault (a full disk, a revoked privilege, a broken
            # schema): stop with one line. The error's own text is not repeated, as its detail
            # and context may quote a row; nothing of the batch was stored, a restart resumes.
            raise StoreFailed(
                f"PostgreSQL refused a batch of {len(polled)} messages ({db.describe_error(e)}); nothing of it was "
                "stored and the offsets stay where they were: fix the cause and restart to resume"
            ) from None
        fence, fresh, refused = outcome
        self.metrics.committed(
            messages=len(fresh),
            stored=len(fresh.valid) - len(refused),
            dead=fresh.dead + refused if refused else fresh.dead,
            dropped=fresh.dropped_counts(),
            seconds=time.perf_counter() - started,
            produced=fresh.produced,
        )
        for partition, position in fence.positions_after().items():
            if partition in self._positions:
                self._positions[partition] = position
        self._rewind(fence.gaps)
        skipped = len(polled) - len(fresh)
        self.stats.events += len(fresh.valid) - len(refused)
        self.stats.dead_letters += len(fresh.dead) + len(refused)
        self.stats.refused += len(refused)
        self.stats.dropped += len(fresh.dropped)
        self.stats.skipped_already_done += skipped
        self.stats.batches += 1
        if refused:
            logger.warning(
                "%d events refused by the database (%s)%s",
                len(refused),
                ", ".join(sorted({d.detail or "" for d in refused})),
                "; dead-lettered" if self.record_dead_letters else "; skipped (the raw-events sink records them)",
            )
        if skipped:
            logger.info("skipped %d messages another instance had already stored", skipped)

    def _store_split(self, polled: Polled[E], depth: int, error: psycopg2.Error) -> None:
        timeout_ms = self.settings.database.statement_timeout_ms
        halves = polled.halves() if depth < MAX_TIMEOUT_SPLITS else None
        if halves is None:
            raise StatementTimeout(
                f"a batch of {len(polled)} messages hit the statement timeout (DB_STATEMENT_TIMEOUT_MS={timeout_ms}) even "
                f"when split {depth} times: PostgreSQL is overloaded or a lock is held (see pg_stat_activity). These "
                f"{len(polled)} messages were not stored (parts of the batch before them may have been); a restart "
                "resumes from the stored offsets. Raise DB_STATEMENT_TIMEOUT_MS or lower SINK_BATCH_SIZE."
            ) from error
        logger.warning(
            "a batch of %d messages hit the statement timeout (DB_STATEMENT_TIMEOUT_MS=%d); committing it in two halves",
            len(polled),
            timeout_ms,
        )
        for half in halves:
            self._store(half, depth + 1)

    def _rewind(self, positions: dict[int, int]) -> None:
        """Seek partitions back to the stored offsets so no message is ever skipped."""
        if self._consumer is None:
            return
        for partition, offset in positions.items():
            logger.warning("%s[%d]: batch starts past the stored offset %d; rewinding", self.topic, partition, offset)
            self._consumer.seek(TopicPartition(self.topic, partition, offset))

    def _heartbeat(self, broker_ok: bool) -> None:
        try:
            self._transaction(
                "recording a heartbeat",
                lambda cur: progress.heartbeat(cur, self.group_id, self.topic, self.instance, broker_ok=broker_ok),
            )
        except psycopg2.Error as e:
            raise self._refused("recording the heartbeat", e) from None
        self._last_beat = time.monotonic()

    def _process(self, messages: list[Message]) -> None:
        if not messages:
            return
        # After the poll: the ledger is at least as new as the events it decides.
        self._refresh_consent()
        valid, dead, dropped = self._split(messages)
        self.metrics.consumed(len(valid) + len(dead) + len(dropped))
        if valid or dead or dropped:
            encoded = self.writer.encode(valid) if valid else None
            self._raise_writer_error()
            self._pending.put(Polled(valid, dead, encoded, dropped, produced_between(messages)))

    def _refresh_lag(self, consumer: Consumer) -> None:
        """Each assigned partition's lag for the metrics: the high watermark librdkafka last
        fetched (no request to the broker) minus the next offset to commit. The embedded broker
        reports a high watermark short of the end (docs/limits.md), so there the lag of a
        consumer that is behind is a little low; caught up, it is 0."""
        for partition, position in list(self._positions.items()):
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
            except KafkaException:
                continue
            start = low if position is None else position
            if high >= 0 and start >= 0:  # both known once the partition has been fetched
                self.metrics.lag(partition, high - start)

    def _writer_free(self) -> bool:
        return not self._writing and self._pending.empty()

    def _behind(self, consumer: Consumer, messages: list[Message]) -> bool:
        """Whether more than BEHIND_SLACK messages wait in Kafka after the newest polled one of a
        partition (the high watermarks librdkafka last fetched, no request to the broker): a
        backlog, which big batches drain fastest."""
        last: dict[int, int] = {}
        for message in messages[: -BEHIND_SCAN - 1 : -1]:
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None and offset >= 0 and partition not in last:
                last[partition] = offset
        for partition, offset in last.items():
            try:
                _low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
            except KafkaException:
                continue
            if high > offset + 1 + BEHIND_SLACK:
                return True
        return False

    def _poll(self, consumer: Consumer, batch_size: int, batch_seconds: float) -> list[Message]:
        """The messages of the next batch. It closes at ``batch_size`` messages, after
        ``batch_seconds``, or as soon as it holds any message while the writer is free and the
        consumer is caught up: at low load each event is written within about a poll slice
        (small batches), under pressure batches grow while the writer works, and a backlog goes
        in full batches (the throughput of big transactions). Time is never the floor of the
        latency."""
        deadline = time.monotonic() + batch_seconds
        messages = consumer.consume(num_messages=batch_size, timeout=min(POLL_SLICE_S, batch_seconds))
        while len(messages) < batch_size and not self.stop.is_set():
            if messages and self._writer_free() and not self._behind(consumer, messages):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages.extend(consumer.consume(num_messages=batch_size - len(messages), timeout=min(POLL_SLICE_S, remaining)))
        return messages

    def _write_batches(self) -> None:
        """The writer thread: one transaction per batch, in order."""
        while True:
            item = self._pending.get()
            self._writing = True
            try:
                if item is None:
                    return
                if self._writer_error is None:
                    if isinstance(item, _Heartbeat):
                        self._heartbeat(item.broker_ok)
                    else:
                        self._store(item)
                        # Under load the queue is always full and the polling thread's beats
                        # are skipped: the writer beats itself when one is due.
                        if time.monotonic() - self._last_beat >= HEARTBEAT_EVERY_S:
                            self._heartbeat(self._broker_lost_at is None)
            except BaseException as e:  # handed to the polling thread, which raises it
                self._writer_error = e
                self.stop.set()
            finally:
                self._writing = False
                self._pending.task_done()

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            raise self._writer_error

    def _drain(self) -> None:
        """Wait until every batch handed to the writer is committed."""
        self._pending.join()
        self._raise_writer_error()

    # -- the loop ---------------------------------------------------------------------------

    def _check_broker(self) -> None:
        """Keep ``_broker_lost_at`` true to the broker: cleared only by a metadata answer (messages
        fetched before the loss still arrive from the client's queue for a while)."""
        if self._broker_lost_at is None or self._consumer is None:
            return
        try:
            self._consumer.list_topics(self.topic, timeout=1.0)
        except KafkaException:
            if not self._broker_said_lost:
                self._broker_said_lost = True
                logger.error(
                    "%s: lost the broker at %s: nothing can be consumed until it answers (still trying)",
                    self.group_id,
                    self.settings.kafka.bootstrap_servers,
                )
            return
        if self._broker_said_lost:
            logger.info("%s: the broker at %s answers again", self.group_id, self.settings.kafka.bootstrap_servers)
        self._broker_lost_at = None
        self._broker_said_lost = False

    def _log_progress(self) -> None:
        if self._broker_lost_at is not None:
            logger.error(
                "%s: broker at %s unreachable for %.0f s; nothing consumed since (%d events stored before)",
                self.group_id,
                self.settings.kafka.bootstrap_servers,
                time.monotonic() - self._broker_lost_at,
                self.stats.events,
            )
            return
        elapsed = max(time.monotonic() - self.stats.started, 1e-9)
        logger.info(
            "%s: %d events stored (%.0f/s), %d dead letters, %d dropped without consent, %d batches",
            self.group_id,
            self.stats.events,
            self.stats.events / elapsed,
            self.stats.dead_letters,
            self.stats.dropped,
            self.stats.batches,
        )

    def _retire(self) -> None:
        """Remove this instance's heartbeat on a clean stop (best effort: it expires anyway)."""
        try:
            conn = self._connection()
            with conn, conn.cursor() as cur:
                progress.retire(cur, self.group_id, self.topic, self.instance)
        except (psycopg2.Error, PlatformError):
            logger.debug("could not remove the heartbeat of %s", self.instance)

    def _start_session(self) -> None:
        """Open and prepare the writer's session and read the consent ledger; a refusal stops the
        consumer in one line (see _refused)."""
        try:
            self._conn = self._open_connection()
        except psycopg2.Error as e:
            raise self._refused("preparing the consumer's session", e) from None
        self._refresh_consent()
        logger.info("consent mode %s: %d users with an analytics consent record", self.settings.consent_mode, len(self.consent))

    def run(self) -> SinkStats:
        """Consume until the stop flag is set; the last batch is committed before returning."""
        # At start-up a missing service is an error the user should see at once; once
        # running, an outage is waited out (see _transaction).
        self._start_session()
        kafka.ensure_reachable(self.settings.kafka)
        self._consumer = kafka.consumer(self.settings.kafka, self.group_id, error_cb=self._on_kafka_error)
        batch_size, batch_seconds = self.settings.sink.batch_size, self.settings.sink.batch_seconds
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        logger.info("%s consuming %s (batches of %d or %.1f s)", self.group_id, self.topic, batch_size, batch_seconds)
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        next_heartbeat = time.monotonic()
        next_lag = time.monotonic() + LAG_EVERY_S
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
                messages = self._poll(self._consumer, batch_size, batch_seconds)
                self._process(messages)
                polled += 1
                gc.collect(2 if polled % FULL_GC_EVERY_BATCHES == 0 else 0)
                now = time.monotonic()
                if now >= next_lag:
                    self._refresh_lag(self._consumer)
                    next_lag = now + LAG_EVERY_S
                if now >= next_heartbeat:
                    self._check_broker()
                    self.metrics.broker_reachable(self._broker_lost_at is None)
                    next_heartbeat = now + HEARTBEAT_EVERY_S
                    # Skipped while a batch waits: the writer is busy, the next beat comes soon.
                    with contextlib.suppress(queue.Full):
                        self._pending.put_nowait(_Heartbeat(self._broker_lost_at is None))
                if now >= next_progress:
                    self._log_progress()
                    next_progress = now + PROGRESS_EVERY_S
        finally:
            gc.enable()
            self._pending.put(None)
            writer.join()
            self._consumer.close()
            if self._writer_error is None:
                self._retire()
            if self._conn is not None:
                self._conn.close()
            self._reset_consent_connection()
        self._raise_writer_error()
        self._log_progress()
        return self.stats
