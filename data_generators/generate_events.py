"""Publish user events to Kafka (topic ``user_events``, key = user_id) for users that are not erased.

Default mix: page_view 70 %, add_to_cart 20 %, purchase 10 % with an amount in euros. Metadata
(page, device, browser, product) never carries personal data. Runs until Ctrl+C unless
``--count`` is given; on the way out it flushes what it produced and says what, if anything,
could not be delivered.
"""

from __future__ import annotations

import argparse
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

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


def active_user_ids(settings: Settings) -> list[int]:
    """Ids of users who exist and are not erased."""
    with db.connection(settings.database, application_name="generate_events") as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT user_id FROM users_public WHERE NOT is_erased ORDER BY user_id")
        return [row[0] for row in cur.fetchall()]


class EventFactory:
    """Random but reproducible events for a list of users."""

    def __init__(self, user_ids: list[int], seed: int | None) -> None:
        self.user_ids = user_ids
        self.rng = random.Random(seed)
        self.kinds = list(EVENT_MIX)
        self.weights = list(EVENT_MIX.values())

    def make(self, now: datetime) -> Event:
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0]
        category = rng.choice(CATEGORIES)
        product = rng.randrange(1, 5000)
        metadata: dict[str, str | int] = {
            "page": f"/{category}/product/{product}" if kind != "purchase" else "/checkout/confirmation",
            "device": rng.choice(DEVICES),
            "browser": rng.choice(BROWSERS),
        }
        amount = None
        if kind != "page_view":
            metadata["product_id"] = product
        if kind == "purchase":
            # Whole cents, from 5.00 to 500.00 EUR: exact, never a float.
            amount = Decimal(rng.randrange(500, 50_001)).scaleb(-2)
        return Event(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user_id=rng.choice(self.user_ids),
            event_type=kind,
            event_timestamp=now,
            amount=amount,
            metadata=metadata,
        )


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    last_error: str = ""

    def callback(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.last_error = err.str()


def produce_blocking(producer: Producer, topic: str, event: Event, report: DeliveryReport, stop: threading.Event) -> bool:
    """Queue one event; while the local queue is full (broker slow or away), wait rather than
    drop it. Return False when asked to stop while waiting (the event was not produced)."""
    warned = False
    while True:
        try:
            producer.produce(topic, value=event.to_json(), key=event.key, on_delivery=report.callback)
            return True
        except BufferError:
            if not warned:
                warned = True
                logger.warning("the producer queue is full (is the broker reachable?); waiting instead of dropping events")
            if stop.is_set():
                return False
            producer.poll(0.1)


def paced(rate: float, stop: threading.Event) -> Iterator[None]:
    """Yield at ``rate`` per second on average (0: as fast as possible) until ``stop`` is set."""
    started = time.monotonic()
    sent = 0
    while not stop.is_set():
        if rate > 0:
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0.002:
                stop.wait(ahead)
                continue
        yield
        sent += 1


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
    producer = kafka.producer(settings.kafka)
    progress = cli.Progress("events", total=count, every_s=5.0)
    next_refresh = time.monotonic() + USERS_REFRESH_S
    topic = settings.kafka.topic
    for produced, _ in enumerate(paced(rate, stop)):
        if count is not None and produced >= count:
            break
        event = factory.make(datetime.now(UTC))
        if not produce_blocking(producer, topic, event, report, stop):
            break
        producer.poll(0)
        progress.advance(1, f"delivered {report.delivered:,}, failed {report.failed:,}")
        if time.monotonic() >= next_refresh:
            next_refresh = time.monotonic() + USERS_REFRESH_S
            factory.user_ids = active_user_ids(settings) or factory.user_ids
    remaining = producer.flush(flush_timeout)
    if remaining:
        logger.warning("%d events still undelivered after %.0f s of flushing", remaining, flush_timeout)
    report.failed += remaining
    progress.show(f"delivered {report.delivered:,}, failed {report.failed:,}")
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
        print(f"events: {report.delivered:,} delivered to {settings.kafka.topic}, {report.failed:,} not delivered")
        if report.failed:
            print(f"last delivery error: {report.last_error}")
            return 1
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
