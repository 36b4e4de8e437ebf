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

``--behaviour shoppers`` (the demo's) makes sessions of BG/NBD shoppers instead of the uniform
mix (``data_generators.shoppers``): each user is one person in every run; with several
processes each process has its own share of the people, so a person's events all come from one
process, in order.

``--via-http URL --key KEY`` sends the same events through the HTTP collector instead
(``POST URL/v1/events``, JSON arrays of ``--http-batch`` events, a few requests in flight; see
``data_generators.collector_client``): what the collector accepts, rejects or could not take
before the end is counted like the producer's deliveries. A collector that is not there at
start is a one-line error; a wrong key or a refused batch stops the run with the collector's
error code and detail (exit status 2).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import multiprocessing.synchronize
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, Protocol

import psycopg2
from confluent_kafka import KafkaError, Message, Producer

from core import cli, db, kafka, retry
from core.config import Settings
from core.errors import InvalidInput, PlatformError, ServiceUnavailable
from data_generators import collector_client, population
from data_generators.collector_client import CollectorSender, CollectorTarget
from data_generators.events import BACKFILL_CHUNK, CHUNK, EventFactory
from data_generators.shoppers import POPULATION_SEED, ShopperFactory

logger = logging.getLogger(__name__)

# What the events look like: the design's uniform 70/20/10 mix, or sessions of shoppers.
BEHAVIOURS = ("uniform", "shoppers")

# The generator re-reads the users this often, so erased users stop receiving events.
USERS_REFRESH_S = 30.0
# While PostgreSQL is away the users are re-read with the platform's backoff (core.retry: 0.5 s,
# 1 s, 2 s ... at most 10 s apart); the refresh is rescheduled, never waited for, as it runs between
# produce calls.
REFRESH_BACKOFF = retry.Backoff(first_s=0.5, max_s=10.0)
FLUSH_TIMEOUT_S = 30.0
# A full producer queue for a moment is normal at full speed; this long means the broker is away.
QUEUE_FULL_WARNING_S = 5.0
# At a set rate the events go in ticks of at least this long: one produce call per few
# milliseconds rather than per event keeps the rate at a fraction of the CPU (the producer
# lingers 20 ms before sending anyway, so no event reaches the broker later for it).
PACE_TICK_S = 0.005


def users_version(settings: Settings) -> tuple[int, int]:
    """Changes whenever users are added or erased: reloading a million ids only then is cheap."""
    with (
        db.connection(settings.database, application_name="generate_events", role=db.ANALYTICS_ROLE) as conn,
        conn,
        conn.cursor() as cur,
    ):
        # Users are added and erased, never deleted: the two counts change whenever the list does.
        cur.execute("SELECT count(*) FILTER (WHERE NOT is_erased), count(*) FROM users_public")
        active, every = cur.fetchone() or (0, 0)
        return int(active), int(every)


def active_user_ids(settings: Settings) -> list[str]:
    """UUIDs (canonical text) of users who exist and are not erased."""
    with (
        db.connection(settings.database, application_name="generate_events", role=db.ANALYTICS_ROLE) as conn,
        conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT user_id::text FROM users_public WHERE NOT is_erased ORDER BY user_id")
        return [row[0] for row in cur.fetchall()]


def active_users_with_signup(settings: Settings, part: int = 0, parts: int = 1) -> tuple[list[str], list[date]]:
    """The users who exist and are not erased with their signup dates; of them, the ``part``-th
    of ``parts`` shares (by a stable hash of the id: one person is always in the same share)."""
    with (
        db.connection(settings.database, application_name="generate_events", role=db.ANALYTICS_ROLE) as conn,
        conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT user_id::text, signup_date FROM users_public WHERE NOT is_erased ORDER BY user_id")
        rows = cur.fetchall()
    if parts > 1:
        shares = population.slots([row[0] for row in rows], POPULATION_SEED) >> population.TABLE_BITS
        rows = [row for row, share in zip(rows, (shares % parts).tolist(), strict=True) if share == part]
    return [row[0] for row in rows], [row[1] for row in rows]


class UsersRefresh:
    """Re-reads the users now and then, so erased users stop receiving events.

    A PostgreSQL outage does not stop the generator: it goes on with the users it knows, logs
    each failed attempt and tries again with backoff; the next success takes the new list.
    """

    def __init__(
        self, settings: Settings, factory: EventFactory, version: tuple[int, int], every_s: float, reload: Callable[[], None]
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.reload = reload
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
                self.reload()
                self.version = version
        except (ServiceUnavailable, psycopg2.Error) as e:
            if isinstance(e, psycopg2.Error) and not db.is_transient(e):
                raise
            self.failures += 1
            delay = REFRESH_BACKOFF.delay(self.failures)
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


class EventSink(Protocol):
    """Where generated events go: the topic through a producer, or the HTTP collector."""

    def send(self, messages: list[dict[str, Any]], stop: threading.Event) -> bool:
        """Hand the messages over; False when asked to stop while waiting for room."""
        ...

    def poll(self) -> None:
        """Serve callbacks; called once per chunk."""
        ...

    def status(self) -> str:
        """What is in flight, for the progress line."""
        ...

    def finish(self, timeout: float) -> None:
        """Deliver what is still queued within ``timeout`` seconds; record what was not."""
        ...


class KafkaSink:
    """Events straight into the topic, one produce_batch call per chunk."""

    def __init__(self, settings: Settings, report: DeliveryReport) -> None:
        self.report = report
        self.topic = settings.kafka.topic
        self.producer = kafka.producer(settings.kafka, **{"on_delivery": report.on_error, "delivery.report.only.error": True})

    def send(self, messages: list[dict[str, Any]], stop: threading.Event) -> bool:
        return produce_chunk(self.producer, self.topic, messages, self.report, stop)

    def poll(self) -> None:
        self.producer.poll(0)

    def status(self) -> str:
        return f"in flight {len(self.producer):,}, failed {self.report.failed:,}"

    def finish(self, timeout: float) -> None:
        self.report.undelivered = self.producer.flush(timeout)
        if self.report.undelivered:
            logger.warning("%d events still undelivered after %.0f s of flushing", self.report.undelivered, timeout)


class CollectorSink:
    """Events through the HTTP collector: the producer's JSON values, batched into requests.

    In the report, ``failed`` counts what the collector rejected and ``undelivered`` what it had
    not taken when the run ended; the rate runs until the last batch is settled, since handing
    events to the sender's buffer says nothing about the collector's pace.
    """

    def __init__(self, sender: CollectorSender, report: DeliveryReport) -> None:
        self.sender = sender
        self.report = report

    def send(self, messages: list[dict[str, Any]], stop: threading.Event) -> bool:
        self.report.produced += len(messages)
        ok = self.sender.add([m["value"] for m in messages], stop)
        self._copy_counts()
        return ok

    def poll(self) -> None:
        self.sender.raise_if_failed()

    def status(self) -> str:
        return f"in flight {self.sender.in_flight:,}, accepted {self.sender.accepted:,}, rejected {self.sender.rejected:,}"

    def finish(self, timeout: float) -> None:
        try:
            self.sender.close(timeout)
        finally:
            self.report.finished = time.time()
            self._copy_counts()

    def _copy_counts(self) -> None:
        self.report.failed = self.sender.rejected
        self.report.undelivered = self.sender.undelivered
        self.report.last_error = self.sender.last_error


@contextlib.contextmanager
def open_sink(settings: Settings, report: DeliveryReport, via: CollectorTarget | None) -> Iterator[EventSink]:
    """The Kafka sink, or the collector's when ``via`` names one (its threads end on the way out)."""
    if via is None:
        yield KafkaSink(settings, report)
        return
    with CollectorSender(via) as sender:
        yield CollectorSink(sender, report)


def ensure_destination(settings: Settings, via: CollectorTarget | None) -> None:
    """One line and no events when the broker, or the collector, is not there at start."""
    if via is None:
        kafka.ensure_reachable(settings.kafka)
    else:
        collector_client.ensure_reachable(via)


def allowance(rate: float, started: float, sent: int, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> int:
    """How many events may go now to keep ``rate`` per second (0: unlimited); waits when ahead.
    ``started`` is a reading of ``clock``."""
    if rate <= 0:
        return CHUNK
    due = int((clock() - started) * rate) - sent
    least = max(1, int(rate * PACE_TICK_S))
    if due < least:
        stop.wait(min(1.0, (least - due) / rate))
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
    via: CollectorTarget | None = None,
    behaviour: str = "uniform",
    part: tuple[int, int] = (0, 1),
    ready: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send events until ``count`` is reached or ``stop`` is set, to the topic or through the
    collector ``via``; deliver what is queued before returning. With ``behaviour="shoppers"``
    this process makes the sessions of its ``part`` (number, of how many) of the people.
    ``ready``, if given, is called once everything is set up, before the first event (a
    worker's StartGate); False: send nothing."""
    ensure_destination(settings, via)
    version = users_version(settings)
    factory, reload = _factory(settings, behaviour, part, seed, count=count, backfill_days=backfill_days)
    # The user lists are large and live for the whole run: keep them out of every collection.
    gc.collect()
    gc.freeze()
    report = DeliveryReport()
    with open_sink(settings, report, via) as sink:
        progress = cli.Progress(label, total=count, every_s=5.0)
        if ready is not None and not ready():
            stop.set()
        report.started = time.time()
        refresh_users = UsersRefresh(settings, factory, version, refresh_users_s, reload)
        finished = factory.finished if isinstance(factory, ShopperFactory) else lambda: False
        started = time.monotonic()
        stopped = False
        while not stopped and not stop.is_set() and (count is None or report.produced < count):
            n = allowance(rate, started, report.produced, stop)
            if count is not None:
                n = min(n, count - report.produced)
            stamp = datetime.now(UTC)
            if backfill_days and not isinstance(factory, ShopperFactory):
                # Small chunks: every chunk shares one moment, and history should not come in lumps.
                stamp, n = factory.backfill_time(stamp, backfill_days), min(n, BACKFILL_CHUNK)
            messages = factory.messages(n, stamp) if n else []
            if n and not messages and not finished():
                logger.warning("no person of this generator can start a session (all dropped out, or the window is full)")
                stopped = True
            elif messages and not sink.send(messages, stop):
                stopped = True
            if finished():
                stopped = True
            sink.poll()
            progress.advance(n, sink.status())
            refresh_users()
        report.finished = time.time()
        sink.finish(flush_timeout)
    progress.done = report.produced
    progress.show(f"delivered {report.delivered:,}, not delivered {report.not_delivered:,}")
    return report


def _factory(
    settings: Settings, behaviour: str, part: tuple[int, int], seed: int | None, *, count: int | None, backfill_days: float
) -> tuple[EventFactory, Callable[[], None]]:
    """The event factory for ``behaviour`` on the users, and how it re-reads them."""
    missing = InvalidInput("there are no users to generate events for: run `python -m data_generators.generate_users` first")
    if behaviour == "shoppers":
        users, signups = active_users_with_signup(settings, *part)
        if not users_version(settings)[0]:
            raise missing
        shoppers = ShopperFactory(users, signups, seed, backfill_days=backfill_days, count=count)
        if backfill_days:
            logger.info(
                "shoppers: %d people, %d events expected over %.1f days: %.3gx the population's purchase rates",
                len(users),
                shoppers.window_events,
                backfill_days,
                shoppers.time_scale,
            )

        def reload_people() -> None:
            shoppers.set_users(*active_users_with_signup(settings, *part))

        return shoppers, reload_people
    if behaviour != "uniform":
        raise InvalidInput(f"unknown behaviour {behaviour!r}: one of {', '.join(BEHAVIOURS)}")
    users = active_user_ids(settings)
    if not users:
        raise missing
    factory = EventFactory(users, seed)

    def reload_users() -> None:
        factory.user_ids = active_user_ids(settings) or factory.user_ids

    return factory, reload_users


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
    via: CollectorTarget | None = None
    behaviour: str = "uniform"
    processes: int = 1


class Running(Protocol):
    """A worker process, as the gate sees it."""

    def is_alive(self) -> bool: ...


class StartGate(NamedTuple):
    """The generator processes start sending together, once each is set up: a set-up reads the
    users and, for shoppers, maps a million of them onto people (seconds, varying by a second
    between processes on a busy host), and the combined rate runs from the first event to the
    last, so a process still setting up would count as the others' sending time."""

    ready: multiprocessing.queues.Queue[int]
    go: multiprocessing.synchronize.Event

    def wait(self, number: int, stop: threading.Event) -> bool:
        """In a worker: say it is set up, then wait for the others; False if stopped meanwhile."""
        self.ready.put(number)
        while not self.go.wait(0.2):
            if stop.is_set():
                return False
        return not stop.is_set()

    def open(self, workers: Sequence[Running], stop: threading.Event) -> None:
        """In the parent: let the workers go once each is set up, one has ended (it failed; the
        others go on and its failure is reported with their reports), or a stop is asked."""
        waiting = len(workers)
        while waiting and not stop.is_set():
            try:
                self.ready.get(timeout=0.5)
                waiting -= 1
            except queue.Empty:
                if not all(worker.is_alive() for worker in workers):
                    break
        self.go.set()


def _worker(job: WorkerJob, results: multiprocessing.queues.Queue[DeliveryReport | None], gate: StartGate) -> None:
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
            via=job.via,
            behaviour=job.behaviour,
            part=(job.number, job.processes),
            ready=lambda: gate.wait(job.number, stop),
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
    via: CollectorTarget | None = None,
    behaviour: str = "uniform",
) -> DeliveryReport:
    """Run ``processes`` generators, each with its own producer (or collector connections) and an
    equal share of ``count`` and ``rate``. Generation is CPU-bound Python: one process per core
    is how it scales."""
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
            via=via,
            behaviour=behaviour,
        )
    ensure_destination(settings, via)
    if not users_version(settings)[0]:
        raise InvalidInput("there are no users to generate events for: run `python -m data_generators.generate_users` first")
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.queues.Queue[DeliveryReport | None] = context.Queue()
    gate = StartGate(context.Queue(), context.Event())
    workers = [
        context.Process(
            target=_worker,
            args=(
                WorkerJob(
                    settings,
                    i,
                    rate / processes,
                    share,
                    _worker_seed(seed, i),
                    flush_timeout,
                    backfill_days,
                    refresh_users_s,
                    via,
                    behaviour,
                    processes,
                ),
                results,
                gate,
            ),
            name=f"generator-{i}",
        )
        for i, share in enumerate(_shares(count, processes))
    ]
    for worker in workers:
        worker.start()
    gate.open(workers, stop)
    reports = _collect_reports(workers, results, stop)
    done = [r for r in reports if r is not None]
    if len(done) < len(workers):
        raise PlatformError(f"{len(workers) - len(done)} of {len(workers)} generator processes failed (see above)")
    return DeliveryReport.combine(done)
