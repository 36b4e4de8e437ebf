"""Publish user events to Kafka (topic ``user_events``, key = user_id) for users that are not erased.

Default mix: page_view 70 %, add_to_cart 20 %, purchase 10 % with an amount in euros. Metadata
(page, device, browser, product) never carries personal data. Runs until Ctrl+C unless
``--count`` is given; on the way out it flushes what it produced and says what, if anything,
could not be delivered. It re-reads the users every ``--refresh-users`` seconds, so erased users
stop receiving events; when PostgreSQL is away then, it goes on with the users it knows and
retries with backoff (at start-up a missing service is a one-line error). ``--processes N``
runs N generator processes (generation is CPU-bound Python; one per core is fastest);
``--backfill-days D`` stamps events over the last D days along a daily traffic curve, for demos
and reports with history. Event ids are UUIDv7.
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import queue
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg2
from confluent_kafka import KafkaError, Message, Producer

from core import cli, db, kafka
from core.config import Settings
from core.errors import InvalidInput, PlatformError, ServiceUnavailable
from data_generators.events import BACKFILL_CHUNK, CHUNK, MAX_BACKFILL_DAYS, EventFactory

logger = logging.getLogger(__name__)

# The generator re-reads the users this often, so erased users stop receiving events.
USERS_REFRESH_S = 30.0
# While PostgreSQL is away the users are re-read after 0.5 s, 1 s, 2 s ... at most 10 s apart:
# quick to notice a restart, and one log line per attempt stays readable through a long outage.
REFRESH_RETRY_FIRST_S = 0.5
REFRESH_RETRY_MAX_S = 10.0
FLUSH_TIMEOUT_S = 30.0
# A full producer queue for a moment is normal at full speed; this long means the broker is away.
QUEUE_FULL_WARNING_S = 5.0


def users_version(settings: Settings) -> tuple[int, int]:
    """Changes whenever users are added or erased: reloading a million ids only then is cheap."""
    with db.connection(settings.database, application_name="generate_events") as conn, conn, conn.cursor() as cur:
        # Users are added and erased, never deleted: the two counts change whenever the list does.
        cur.execute("SELECT count(*) FILTER (WHERE NOT is_erased), count(*) FROM users_public")
        active, every = cur.fetchone() or (0, 0)
        return int(active), int(every)


def active_user_ids(settings: Settings) -> list[str]:
    """UUIDs (canonical text) of users who exist and are not erased."""
    with db.connection(settings.database, application_name="generate_events") as conn, conn, conn.cursor() as cur:
        cur.execute("SELECT user_id::text FROM users_public WHERE NOT is_erased ORDER BY user_id")
        return [row[0] for row in cur.fetchall()]


class UsersRefresh:
    """Re-reads the users now and then, so erased users stop receiving events.

    A PostgreSQL outage does not stop the generator: it goes on with the users it knows, logs
    each failed attempt and tries again with backoff; the next success takes the new list.
    """

    def __init__(self, settings: Settings, factory: EventFactory, version: tuple[int, int], every_s: float) -> None:
        self.settings = settings
        self.factory = factory
        self.version = version
        self.every_s = every_s
        self.failures = 0
        self.due = time.monotonic() + every_s

    def __call__(self) -> None:
        """Refresh when due; never raises for a database that is away."""
        if time.monotonic() < self.due:
            return
        try:
            version = users_version(self.settings)
            if version != self.version:
                self.factory.user_ids = active_user_ids(self.settings) or self.factory.user_ids
                self.version = version
        except (ServiceUnavailable, psycopg2.Error) as e:
            if isinstance(e, psycopg2.Error) and not db.is_transient(e):
                raise
            self.failures += 1
            delay = min(REFRESH_RETRY_FIRST_S * 2 ** (self.failures - 1), REFRESH_RETRY_MAX_S)
            reason = str(e) if isinstance(e, ServiceUnavailable) else db.describe_error(e)
            logger.warning(
                "cannot re-read the users (attempt %d): %s; producing for the %d users known, next attempt in %.1f s",
                self.failures,
                reason,
                len(self.factory.user_ids),
                delay,
            )
            self.due = time.monotonic() + delay
            return
        if self.failures:
            logger.warning("PostgreSQL answers again after %d failed attempts: users re-read", self.failures)
            self.failures = 0
        self.due = time.monotonic() + self.every_s


@dataclass
class DeliveryReport:
    """Counts of what the producer did; the producer reports errors only (delivery.report.only.error)."""

    produced: int = 0
    failed: int = 0
    undelivered: int = 0
    last_error: str = ""
    # Wall-clock time of the first and last event produced (time.time(): comparable across processes).
    started: float = 0.0
    finished: float = 0.0

    @classmethod
    def combine(cls, reports: list[DeliveryReport]) -> DeliveryReport:
        """One report for several generator processes."""
        return cls(
            produced=sum(r.produced for r in reports),
            failed=sum(r.failed for r in reports),
            undelivered=sum(r.undelivered for r in reports),
            last_error=next((r.last_error for r in reports if r.last_error), ""),
            started=min((r.started for r in reports), default=0.0),
            finished=max((r.finished for r in reports), default=0.0),
        )

    @property
    def rate(self) -> float:
        """Events produced per second, from the first to the last."""
        return self.produced / max(self.finished - self.started, 1e-9)

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
    producer: Producer, topic: str, messages: list[dict[str, Any]], report: DeliveryReport, stop: threading.Event
) -> bool:
    """Queue a chunk with one produce_batch call; while the local queue is full (broker slow or
    away) wait rather than drop. Return False when asked to stop while waiting; what was not
    queued then is simply not produced."""
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
        producer.poll(0.005)
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
    label: str = "events",
    backfill_days: float = 0.0,
    refresh_users_s: float = USERS_REFRESH_S,
) -> DeliveryReport:
    """Produce events until ``count`` is reached or ``stop`` is set; flush before returning."""
    kafka.ensure_reachable(settings.kafka)
    version = users_version(settings)
    users = active_user_ids(settings)
    if not users:
        raise InvalidInput("there are no users to generate events for: run `python -m data_generators.generate_users` first")
    factory = EventFactory(users, seed)
    # The user lists are large and live for the whole run: keep them out of every collection.
    gc.collect()
    gc.freeze()
    report = DeliveryReport()
    producer = kafka.producer(settings.kafka, **{"on_delivery": report.on_error, "delivery.report.only.error": True})
    progress = cli.Progress(label, total=count, every_s=5.0)
    report.started = time.time()
    refresh_users = UsersRefresh(settings, factory, version, refresh_users_s)
    topic = settings.kafka.topic
    started = time.monotonic()
    stopped = False
    while not stopped and not stop.is_set() and (count is None or report.produced < count):
        n = allowance(rate, started, report.produced, stop)
        if count is not None:
            n = min(n, count - report.produced)
        stamp = datetime.now(UTC)
        if backfill_days:
            # Small chunks: every chunk shares one moment, and history should not come in lumps.
            stamp, n = factory.backfill_time(stamp, backfill_days), min(n, BACKFILL_CHUNK)
        if n and not produce_chunk(producer, topic, factory.messages(n, stamp), report, stop):
            stopped = True
        producer.poll(0)
        progress.advance(n, f"in flight {len(producer):,}, failed {report.failed:,}")
        refresh_users()
    report.finished = time.time()
    report.undelivered = producer.flush(flush_timeout)
    if report.undelivered:
        logger.warning("%d events still undelivered after %.0f s of flushing", report.undelivered, flush_timeout)
    progress.done = report.produced
    progress.show(f"delivered {report.delivered:,}, not delivered {report.not_delivered:,}")
    return report


def _shares(total: int | None, parts: int) -> list[int | None]:
    if total is None:
        return [None] * parts
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _worker_seed(seed: int | None, number: int) -> int | None:
    return None if seed is None else seed + number


class WorkerJob(NamedTuple):
    """One generator process's share of the work."""

    settings: Settings
    number: int
    rate: float
    events: int | None
    seed: int | None
    flush_timeout: float
    backfill_days: float
    refresh_users_s: float


def _worker(job: WorkerJob, results: multiprocessing.queues.Queue[DeliveryReport | None]) -> None:
    """One generator process. It stops on SIGTERM from the parent only: a Ctrl+C reaches every
    process of the terminal at once, and the parent forwards it exactly once."""
    cli.setup_logging(job.settings.log_level)
    stop = cli.install_stop_handlers()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        report = generate(
            job.settings,
            rate=job.rate,
            count=job.events,
            seed=job.seed,
            stop=stop,
            flush_timeout=job.flush_timeout,
            label=f"events[{job.number}]",
            backfill_days=job.backfill_days,
            refresh_users_s=job.refresh_users_s,
        )
    except PlatformError as e:
        logger.error("generator process %d: %s", job.number, e)
        results.put(None)
        return
    results.put(report)


def _collect_reports(
    workers: Sequence[multiprocessing.process.BaseProcess],
    results: multiprocessing.queues.Queue[DeliveryReport | None],
    stop: threading.Event,
) -> list[DeliveryReport | None]:
    """Each worker's report (None: it failed), forwarding a stop request to every worker once."""
    reports: list[DeliveryReport | None] = []
    forwarded = False
    while len(reports) < len(workers):
        if stop.is_set() and not forwarded:
            forwarded = True
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()  # SIGTERM: the worker finishes its chunk and flushes
        try:
            reports.append(results.get(timeout=0.5))
        except queue.Empty:
            if not any(worker.is_alive() for worker in workers) and results.empty():
                break
    for worker in workers:
        worker.join()
    return reports


def generate_in_processes(
    settings: Settings,
    *,
    processes: int,
    rate: float,
    count: int | None,
    seed: int | None,
    stop: threading.Event,
    flush_timeout: float = FLUSH_TIMEOUT_S,
    backfill_days: float = 0.0,
    refresh_users_s: float = USERS_REFRESH_S,
) -> DeliveryReport:
    """Run ``processes`` generators, each with its own producer and an equal share of ``count``
    and ``rate``. Generation is CPU-bound Python: one process per core is how it scales."""
    if processes <= 1:
        return generate(
            settings,
            rate=rate,
            count=count,
            seed=seed,
            stop=stop,
            flush_timeout=flush_timeout,
            backfill_days=backfill_days,
            refresh_users_s=refresh_users_s,
        )
    kafka.ensure_reachable(settings.kafka)
    if not users_version(settings)[0]:
        raise InvalidInput("there are no users to generate events for: run `python -m data_generators.generate_users` first")
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.queues.Queue[DeliveryReport | None] = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(
                WorkerJob(
                    settings, i, rate / processes, share, _worker_seed(seed, i), flush_timeout, backfill_days, refresh_users_s
                ),
                results,
            ),
            name=f"generator-{i}",
        )
        for i, share in enumerate(_shares(count, processes))
    ]
    for worker in workers:
        worker.start()
    reports = _collect_reports(workers, results, stop)
    done = [r for r in reports if r is not None]
    if len(done) < len(workers):
        raise PlatformError(f"{len(workers) - len(done)} of {len(workers)} generator processes failed (see above)")
    return DeliveryReport.combine(done)


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
        "--backfill-days",
        type=float,
        default=0.0,
        metavar="DAYS",
        help="stamp events at random moments of the last DAYS days, busier at busy hours, instead of now "
        "(for demos and reports with history; default: 0)",
    )
    parser.add_argument(
        "--refresh-users",
        type=float,
        default=USERS_REFRESH_S,
        metavar="SECONDS",
        help=f"re-read the users this often, so erased users stop receiving events (default: {USERS_REFRESH_S:.0f})",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="generator processes, each with its own producer (default: 1; one per core is fastest)",
    )
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
    if not 0 <= args.backfill_days <= MAX_BACKFILL_DAYS:
        parser.error(f"--backfill-days must be between 0 and {MAX_BACKFILL_DAYS}")
    if args.processes < 1:
        parser.error("--processes must be 1 or more")
    if args.refresh_users <= 0:
        parser.error("--refresh-users must be more than 0")

    def execute(settings: Settings) -> int:
        report = generate_in_processes(
            settings,
            processes=args.processes,
            rate=args.rate,
            count=args.count,
            seed=args.seed,
            stop=cli.install_stop_handlers(),
            flush_timeout=args.flush_timeout,
            backfill_days=args.backfill_days,
            refresh_users_s=args.refresh_users,
        )
        print(
            f"events: {report.delivered:,} delivered to {settings.kafka.topic}, {report.not_delivered:,} not delivered "
            f"({report.rate:,.0f}/s produced, {args.processes} process{'es' if args.processes > 1 else ''})"
        )
        if report.not_delivered:
            print(f"last delivery error: {report.last_error}")
            return 1
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
