"""Helpers for integration tests: run the real commands, produce events, wait for consumers."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
from confluent_kafka import KafkaError, Message
from psycopg2 import sql

from analytics import ledger
from core import db, kafka, progress
from core.config import Settings, load_settings
from core.events import Event, user_uuid
from core.progress import lag

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RAW = "consumers.store_raw_events"
STREAMING = "consumers.streaming_metrics"


def settings() -> Settings:
    return load_settings()


def run_command(
    module: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` as a user would, from the project root."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Service:
    """A long-running command (a consumer) started in the background."""

    process: subprocess.Popen[str]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def set_report_budget(settings: Settings, epsilon: float = 365.0, overall: float = 1000.0) -> None:
    """The daily report's budget (report:daily) and the overall one, as the DPO sets them."""
    with db.connection(settings.database, role=db.CONSOLE_ROLE) as conn, conn, conn.cursor() as cur:
        ledger.set_budget(cur, ledger.REPORT_ANALYST, epsilon, "dpo:test")
        ledger.set_budget(cur, ledger.OVERALL, overall, "dpo:test")


def start_service(module: str, group: str, log_dir: Path, env: dict[str, str] | None = None, args: Iterable[str] = ()) -> Service:
    log = log_dir / f"{module}.{group}.{uuid.uuid4().hex[:6]}.log"
    handle = open(log, "w", encoding="utf-8")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--group", group, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
    )
    handle.close()
    return Service(process, log)


def start_http_service(
    module: str, name: str, log_dir: Path, *, args: Iterable[str] = (), env: dict[str, str] | None = None, ready: str = "/healthz"
) -> tuple[subprocess.Popen[str], Path, str]:
    """``python -m module --port 0 args`` (an HTTP service on a free port), its output in a log;
    return (process, log, its URL) once the log says "``name`` listening on URL" and ``ready``
    answers 200."""
    log = log_dir / f"{module}.{uuid.uuid4().hex[:6]}.log"
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", *args],
            cwd=PROJECT_ROOT,
            env={**os.environ, **(env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
    listening = re.compile(rf"{re.escape(name)} listening on (http://[\d.]+:\d+)")
    found: list[str] = []

    def started() -> bool:
        assert process.poll() is None, f"the {name} exited ({process.returncode}):\n{log.read_text()}"
        found.extend(listening.findall(log.read_text()))
        return bool(found)

    wait_until(started, timeout=60, what=f"the {name} to listen")

    def answers() -> bool:
        try:
            return httpx.get(found[0] + ready, timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answers, timeout=60, what=f"the {name}'s {ready}")
    return process, log, found[0]


@dataclass
class HttpService:
    """A running HTTP service (``start_http_service``'s process, log and URL) and an HTTP client
    pointed at it; each service's fixture adds its own calls."""

    process: subprocess.Popen[str]
    log: Path
    url: str
    http: httpx.Client = field(init=False)
    stop_timeout_s: ClassVar[float] = 30

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=self.stop_timeout_s if timeout is None else timeout)


def start_generator(log: Path, *args: str, new_session: bool = False) -> subprocess.Popen[str]:
    """``python -m data_generators.generate_events args`` in the background, output to ``log``;
    with ``new_session`` in a process group of its own, as a terminal's Ctrl+C would reach it."""
    with open(log, "w", encoding="utf-8") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "data_generators.generate_events", *args],
            cwd=PROJECT_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=new_session,
        )


def produce(settings: Settings, payloads: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Send (key, value) pairs to the settings' topic and wait until all are acknowledged."""
    producer = kafka.producer(settings.kafka)
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    sent = 0
    for key, value in payloads:
        producer.produce(settings.kafka.topic, value=value, key=key, on_delivery=delivered)
        producer.poll(0)
        sent += 1
    assert producer.flush(30) == 0
    assert not failures, failures
    return sent


def produce_events(settings: Settings, events: Iterable[Event]) -> int:
    return produce(settings, ((e.key, e.to_json()) for e in events))


def wait_until(condition, timeout: float = 90, interval: float = 0.1, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_caught_up(settings: Settings, group: str, timeout: float = 90) -> None:
    """Wait until ``group`` has stored every message of the topic in PostgreSQL."""
    wait_until(lambda: sum(lag(settings, group).values()) == 0, timeout, what=f"{group} to catch up")


def stored_total(settings: Settings, group: str) -> int:
    """Messages ``group`` has finished, by the offsets it stored (core.progress)."""
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        return progress.total_stored(cur, group)


def query(settings: Settings, statement: str, params: tuple[object, ...] | dict[str, object] = ()) -> list[tuple[Any, ...]]:
    """Rows of one statement in a transaction of its own (tests compare them with known values)."""
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return list(cur.fetchall()) if cur.description else []


def expected_metrics(events: Iterable[Event]) -> dict[tuple[date, str], tuple[int, Decimal]]:
    """What the daily metrics must be for these events, computed independently of the code under test."""
    out: dict[tuple[date, str], tuple[int, Decimal]] = {}
    for e in events:
        count, revenue = out.get((e.event_date, e.event_type), (0, Decimal("0")))
        out[(e.event_date, e.event_type)] = (count + 1, revenue + (e.amount or Decimal("0")))
    return out


def metrics_table(settings: Settings, table: str) -> dict[tuple[date, str], tuple[int, Decimal]]:
    statement = sql.SQL("SELECT event_date, event_type, total_events, total_amount FROM {}").format(sql.Identifier(table))
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute(statement)
        return {(d, t): (int(c), Decimal(r)) for d, t, c, r in cur.fetchall()}


def read_topic(settings: Settings, count: int, timeout: float = 60) -> list[bytes]:
    """The values of the first ``count`` messages of the settings' topic (any partition order)."""
    probe = kafka.consumer(settings.kafka, f"probe-{uuid.uuid4().hex[:8]}")
    probe.subscribe([settings.kafka.topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count:
            assert time.monotonic() < deadline, f"read {len(values)} of {count} messages"
            values += [m.value() for m in probe.consume(1000, 0.5) if m.error() is None]  # type: ignore[misc]
    finally:
        probe.close()
    return values


def consume_all(settings: Settings, group: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """Run both consumers (``raw-<group>``, ``stream-<group>``, with ``env`` added to their
    environment) until caught up; return their logs."""
    raw = start_service(RAW, f"raw-{group}", tmp_path, env)
    streaming = start_service(STREAMING, f"stream-{group}", tmp_path, env)
    try:
        wait_caught_up(settings, f"raw-{group}")
        wait_caught_up(settings, f"stream-{group}")
    finally:
        assert raw.stop() == 0, raw.output()
        assert streaming.stop() == 0, streaming.output()
    return raw.output() + streaming.output()


def known_events(n: int, seed: int, days: list[date]) -> list[Event]:
    """n events with unique ids spread over ``days``, purchases with exact cent amounts."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        day = days[i % len(days)]
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))
        kind = rng.choices(["page_view", "add_to_cart", "purchase"], [70, 20, 10])[0]
        amount = Decimal(rng.randrange(1, 100_000)).scaleb(-2) if kind == "purchase" else None
        events.append(
            Event(
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                user_uuid(rng.randrange(1, 500)),
                kind,
                moment,
                amount,
                {"page": "/p"},
            )
        )
    return events
