"""Publish user events to Kafka (topic ``user_events``, key = user_id) for users that are not erased.

Default mix: page_view 70 %, add_to_cart 20 %, purchase 10 % with an amount in euros. Metadata
(page, device, browser, product) never carries personal data. Runs until Ctrl+C unless
``--count`` is given; on the way out it flushes what it produced and says what, if anything,
could not be delivered.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from core import cli, db, kafka
from core.config import Settings
from core.errors import InvalidInput
from core.events import Event

logger = logging.getLogger(__name__)

EVENT_MIX = {"page_view": 70, "add_to_cart": 20, "purchase": 10}
DEVICES = ("desktop", "mobile", "tablet")
BROWSERS = ("chrome", "firefox", "safari", "edge")
CATEGORIES = ("shoes", "books", "garden", "electronics", "toys", "kitchen", "sports", "beauty")
# The generator re-reads the users this often, so erased users stop receiving events.
USERS_REFRESH_S = 30.0
FLUSH_TIMEOUT_S = 30.0
# A full producer queue for a moment is normal at full speed; this long means the broker is away.
QUEUE_FULL_WARNING_S = 5.0


def active_user_ids(settings: Settings) -> list[int]:
    """Ids of users who exist and are not erased."""
    with db.connection(settings.database, application_name="generate_events") as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT user_id FROM users_public WHERE NOT is_erased ORDER BY user_id")
        return [row[0] for row in cur.fetchall()]


# UUID version 4: version nibble 4 (bits 76-79) and variant 0b10 (bits 62-63).
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_SET = (0x4 << 76) | (0x2 << 62)
# Pre-serialised metadata variants per event type: realistic variety without a json.dumps per event.
METADATA_POOL = 2048
# Events serialised and handed to the producer per step; also the pacing granularity.
CHUNK = 500


class EventFactory:
    """Random but reproducible events for a list of users.

    ``payloads()`` is the fast path the generator uses: it writes the wire format directly from
    templates (about 2 us an event instead of 20 us through ``Event.to_json``); ``make()`` builds
    the same kind of event as an ``Event``. A test checks both parse to valid events.
    """

    def __init__(self, user_ids: list[int], seed: int | None) -> None:
        self.rng = random.Random(seed)
        self.user_ids = user_ids
        # 100 slots filled by weight: one random() picks a type with the exact mix.
        self.kind_table = [kind for kind, weight in EVENT_MIX.items() for _ in range(weight)]
        self.metadata = {
            kind: [json.dumps(self._metadata(kind), separators=(",", ":")) for _ in range(METADATA_POOL)] for kind in EVENT_MIX
        }

    @property
    def user_ids(self) -> list[int]:
        return self._user_ids

    @user_ids.setter
    def user_ids(self, ids: list[int]) -> None:
        self._user_ids = ids
        self._user_strs = [str(u) for u in ids]
        self._user_keys = [s.encode("ascii") for s in self._user_strs]

    def _metadata(self, kind: str) -> dict[str, str | int]:
        rng = self.rng
        category, product = rng.choice(CATEGORIES), rng.randrange(1, 5000)
        metadata: dict[str, str | int] = {
            "page": f"/{category}/product/{product}" if kind != "purchase" else "/checkout/confirmation",
            "device": rng.choice(DEVICES),
            "browser": rng.choice(BROWSERS),
        }
        if kind != "page_view":
            metadata["product_id"] = product
        return metadata

    def _amount_cents(self) -> int:
        # Whole cents, from 5.00 to 500.00 EUR: exact, never a float.
        return self.rng.randrange(500, 50_001)

    def make(self, now: datetime) -> Event:
        rng = self.rng
        kind = self.kind_table[int(rng.random() * len(self.kind_table))]
        amount = Decimal(self._amount_cents()).scaleb(-2) if kind == "purchase" else None
        return Event(
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            user_id=self.user_ids[int(rng.random() * len(self.user_ids))],
            event_type=kind,
            event_timestamp=now,
            amount=amount,
            metadata=self._metadata(kind),
        )

    def payloads(self, n: int, now: datetime) -> list[tuple[bytes, bytes]]:
        """``n`` events as (key, JSON value) pairs, all stamped ``now``."""
        rand, bits = self.rng.random, self.rng.getrandbits
        kinds, n_kinds = self.kind_table, len(self.kind_table)
        strs, keys, n_users = self._user_strs, self._user_keys, len(self._user_strs)
        metadata = self.metadata
        stamp = now.astimezone(UTC).isoformat()
        out = []
        for _ in range(n):
            kind = kinds[int(rand() * n_kinds)]
            h = f"{(bits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
            u = int(rand() * n_users)
            if kind == "purchase":
                cents = self._amount_cents()
                amount = f'"{cents // 100}.{cents % 100:02d}"'
            else:
                amount = "null"
            pool = metadata[kind]
            value = (
                f'{{"event_id":"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}","user_id":{strs[u]},'
                f'"event_type":"{kind}","event_timestamp":"{stamp}","amount":{amount},'
                f'"metadata":{pool[int(rand() * METADATA_POOL)]}}}'
            )
            out.append((keys[u], value.encode()))
        return out


@dataclass
class DeliveryReport:
    """Counts of what the producer did; the producer reports errors only (delivery.report.only.error)."""

    produced: int = 0
    failed: int = 0
    undelivered: int = 0
    last_error: str = ""

    def on_error(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.last_error = err.str()

    @property
    def delivered(self) -> int:
        return self.produced - self.failed - self.undelivered

    @property
    def not_delivered(self) -> int:
        return self.failed + self.undelivered


def produce_chunk(
    producer: Producer, topic: str, pairs: list[tuple[bytes, bytes]], report: DeliveryReport, stop: threading.Event
) -> bool:
    """Queue a chunk with one produce_batch call; while the local queue is full (broker slow or
    away) wait rather than drop. Return False when asked to stop while waiting; what was not
    queued then is simply not produced."""
    messages: list[dict[str, Any]] = [{"key": key, "value": value} for key, value in pairs]
    blocked_since: float | None = None
    while messages:
        try:
            producer.produce_batch(topic, messages)
        except BufferError:
            rejected = messages
        else:
            rejected = [m for m in messages if "_error" in m]
            report.produced += len(messages) - len(rejected)
            full = [m for m in rejected if m["_error"].code() == KafkaError._QUEUE_FULL]
            for m in rejected:
                if m["_error"].code() != KafkaError._QUEUE_FULL:
                    report.failed += 1
                    report.produced += 1
                    report.last_error = m["_error"].str()
            rejected = full
        messages = [{"key": m["key"], "value": m["value"]} for m in rejected]
        if not messages:
            break
        now = time.monotonic()
        if blocked_since is None:
            blocked_since = now
        elif now - blocked_since > QUEUE_FULL_WARNING_S:
            logger.warning(
                "the producer queue has been full for %.0f s: is the broker reachable? waiting, not dropping", now - blocked_since
            )
            blocked_since = now
        if stop.is_set():
            return False
        producer.poll(0.05)
    return True


def allowance(rate: float, started: float, sent: int, stop: threading.Event) -> int:
    """How many events may go now to keep ``rate`` per second (0: unlimited); waits when ahead."""
    if rate <= 0:
        return CHUNK
    due = int((time.monotonic() - started) * rate) - sent
    if due <= 0:
        stop.wait(min(1.0, (1 - due) / rate))
        return 0
    return min(due, CHUNK)


def generate(
    settings: Settings,
    *,
    rate: float,
    count: int | None,
    seed: int | None,
    stop: threading.Event,
    flush_timeout: float = FLUSH_TIMEOUT_S,
) -> DeliveryReport:
    """Produce events until ``count`` is reached or ``stop`` is set; flush before returning."""
    kafka.ensure_reachable(settings.kafka)
    users = active_user_ids(settings)
    if not users:
        raise InvalidInput("there are no users to generate events for: run `python -m data_generators.generate_users` first")
    factory = EventFactory(users, seed)
    report = DeliveryReport()
    producer = kafka.producer(settings.kafka, **{"on_delivery": report.on_error, "delivery.report.only.error": True})
    progress = cli.Progress("events", total=count, every_s=5.0)
    next_refresh = time.monotonic() + USERS_REFRESH_S
    topic = settings.kafka.topic
    started = time.monotonic()
    stopped = False
    while not stopped and not stop.is_set() and (count is None or report.produced < count):
        n = allowance(rate, started, report.produced, stop)
        if count is not None:
            n = min(n, count - report.produced)
        if n and not produce_chunk(producer, topic, factory.payloads(n, datetime.now(UTC)), report, stop):
            stopped = True
        producer.poll(0)
        progress.advance(n, f"in flight {len(producer):,}, failed {report.failed:,}")
        if time.monotonic() >= next_refresh:
            next_refresh = time.monotonic() + USERS_REFRESH_S
            factory.user_ids = active_user_ids(settings) or factory.user_ids
    report.undelivered = producer.flush(flush_timeout)
    if report.undelivered:
        logger.warning("%d events still undelivered after %.0f s of flushing", report.undelivered, flush_timeout)
    progress.done = report.produced
    progress.show(f"delivered {report.delivered:,}, not delivered {report.not_delivered:,}")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_generators.generate_events",
        description="Publish synthetic user events (page_view 70%%, add_to_cart 20%%, purchase 10%%) to the "
        "events topic, keyed by user_id, for users that exist and are not erased. Runs until Ctrl+C unless "
        "--count is given.",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="events per second; 0 = as fast as possible (default: 100)")
    parser.add_argument("--count", type=int, default=None, help="stop after this many events (default: run until Ctrl+C)")
    parser.add_argument("--seed", type=int, default=None, help="random seed, for reproducible events")
    parser.add_argument(
        "--flush-timeout",
        type=float,
        default=FLUSH_TIMEOUT_S,
        help=f"seconds to keep delivering queued events when stopping (default: {FLUSH_TIMEOUT_S:.0f})",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate < 0:
        parser.error("--rate must be 0 or more")
    if args.count is not None and args.count < 0:
        parser.error("--count must be 0 or more")

    def execute(settings: Settings) -> int:
        report = generate(
            settings,
            rate=args.rate,
            count=args.count,
            seed=args.seed,
            stop=cli.install_stop_handlers(),
            flush_timeout=args.flush_timeout,
        )
        print(f"events: {report.delivered:,} delivered to {settings.kafka.topic}, {report.not_delivered:,} not delivered")
        if report.not_delivered:
            print(f"last delivery error: {report.last_error}")
            return 1
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
