"""Exactly-once under hard kills and rebalances, PostgreSQL and broker outages, SIGTERM.

The checks are the ones Kafka and Flink use for their own claims: every event carries a unique
id; after the chaos, ``count(*) = count(distinct event_id) = sent`` and the streaming totals equal
both the batch totals and the totals computed independently in the test.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest
from psycopg2 import sql

import devstack as stack
from core import db, kafka
from core.config import Settings
from tests.helpers import (
    RAW,
    STREAMING,
    Service,
    expected_metrics,
    known_events,
    metrics_table,
    produce_events,
    query,
    run_command,
    start_generator,
    start_service,
    stored_total,
    wait_caught_up,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Small batches: many transactions per second, so a kill at a random moment often lands inside one.
SMALL_BATCHES = {"SINK_BATCH_SIZE": "200", "SINK_BATCH_SECONDS": "0.05"}


stored = stored_total


def assert_exactly_once(settings: Settings, events: list, days: list) -> None:  # type: ignore[type-arg]
    [(total, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    assert total == distinct == len(events)
    expected = expected_metrics(events)
    assert metrics_table(settings, "metrics_streaming_daily") == expected
    for day in days:
        assert run_command("batch.batch_metrics", day.isoformat()).returncode == 0
        result = run_command("batch.compare_batch_vs_stream", day.isoformat())
        assert result.returncode == 0, result.stdout
    assert metrics_table(settings, "metrics_batch_daily") == expected


def kill_each_at_its_moment(settings: Settings, services: dict[str, Service], moments: dict[str, int]) -> bool:
    """SIGKILL each consumer whose group has stored ``moments[group]`` messages; True once all are dead."""
    for group, service in services.items():
        if service.process.returncode is None and stored(settings, group) >= moments[group]:
            service.process.kill()
            assert service.process.wait(timeout=10) == -signal.SIGKILL
    return all(service.process.returncode is not None for service in services.values())


def test_sigkill_at_random_moments_neither_loses_nor_double_counts(settings: Settings, group: str, tmp_path: Path) -> None:
    rng = random.Random(2026)
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=2), today]
    events = known_events(40_000, seed=3, days=days)
    chunks = [events[i : i + 10_000] for i in range(0, len(events), 10_000)]
    raw_group, stream_group = f"raw-{group}", f"stream-{group}"
    kills = 0
    for chunk in chunks[:-1]:
        produce_events(settings, chunk)
        before = {g: stored(settings, g) for g in (raw_group, stream_group)}
        services = {
            raw_group: start_service(RAW, raw_group, tmp_path, SMALL_BATCHES),
            stream_group: start_service(STREAMING, stream_group, tmp_path, SMALL_BATCHES),
        }
        # The random moment of each kill is a random point of the consumer's way through the
        # chunk, polled: early enough that the chunk is not finished, so the kill lands while
        # the consumer is committing batch after batch (mid-stream), never after it went idle.
        kill_at = {g: before[g] + rng.randrange(len(chunk) // 20, len(chunk) // 2) for g in services}

        wait_until(
            functools.partial(kill_each_at_its_moment, settings, services, kill_at),
            interval=0.01,
            what="each consumer to reach its moment of the kill",
        )
        for g in services:
            done = stored(settings, g) - before[g]
            assert 0 < done < len(chunk), f"{g}: killed after {done} of {len(chunk)} messages, not mid-stream"
            kills += 1
    produce_events(settings, chunks[-1])
    raw = start_service(RAW, raw_group, tmp_path)
    streaming = start_service(STREAMING, stream_group, tmp_path)
    try:
        wait_caught_up(settings, raw_group, timeout=120)
        wait_caught_up(settings, stream_group, timeout=120)
    finally:
        raw.stop()
        streaming.stop()
    assert kills == 6
    assert_exactly_once(settings, events, days)


def test_two_instances_per_group_with_rebalances_and_a_kill(settings: Settings, group: str, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    events = known_events(30_000, seed=5, days=[today])
    raw_group, stream_group = f"raw-{group}", f"stream-{group}"
    producer_done = threading.Event()

    def produce_slowly() -> None:
        for i in range(0, len(events), 1_000):
            produce_events(settings, events[i : i + 1_000])
            time.sleep(0.3)  # pacing the producer so rebalances happen while events flow
        producer_done.set()

    feeder = threading.Thread(target=produce_slowly)
    feeder.start()
    first: list[Service] = [
        start_service(m, g, tmp_path, SMALL_BATCHES) for m, g in ((RAW, raw_group), (STREAMING, stream_group))
    ]
    wait_until(lambda: stored(settings, raw_group) > 0 and stored(settings, stream_group) > 0, what="first commits")
    second = [start_service(m, g, tmp_path, SMALL_BATCHES) for m, g in ((RAW, raw_group), (STREAMING, stream_group))]
    # Wait for the rebalance: the second instances log their assignment.
    wait_until(lambda: all("assigned" in s.output() for s in second), timeout=60, what="second instances assigned")
    for service in first:
        service.process.kill()
        service.process.wait(timeout=10)
    feeder.join(timeout=120)
    assert producer_done.is_set()
    try:
        wait_caught_up(settings, raw_group, timeout=120)
        wait_caught_up(settings, stream_group, timeout=120)
    finally:
        for service in second:
            assert service.stop() == 0, service.output()
    assert_exactly_once(settings, events, [today])


def test_postgres_outage_is_waited_out_without_loss(settings: Settings, group: str, tmp_path: Path) -> None:
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("needs the embedded stack, whose PostgreSQL the test can stop and start")
    today = datetime.now(UTC).date()
    events = known_events(10_000, seed=9, days=[today])
    raw_group, stream_group = f"raw-{group}", f"stream-{group}"
    produce_events(settings, events[:5_000])
    raw = start_service(RAW, raw_group, tmp_path, SMALL_BATCHES)
    streaming = start_service(STREAMING, stream_group, tmp_path, SMALL_BATCHES)
    try:
        wait_caught_up(settings, raw_group)
        wait_caught_up(settings, stream_group)
        port = urlsplit(settings.database.url).port
        assert stack.stop_postgres(Path(data_dir))
        produce_events(settings, events[5_000:])
        wait_until(
            lambda: all("retrying" in s.output() for s in (raw, streaming)), timeout=60, what="consumers to notice the outage"
        )
        assert raw.process.poll() is None and streaming.process.poll() is None, "a consumer died during the outage"
        stack.start_postgres(Path(data_dir), port, fast=True)
        wait_caught_up(settings, raw_group, timeout=120)
        wait_caught_up(settings, stream_group, timeout=120)
    finally:
        stack.start_postgres(Path(data_dir), urlsplit(settings.database.url).port, fast=True)
        raw.stop()
        streaming.stop()
    assert "PostgreSQL failed while" in raw.output() or "not reachable" in raw.output()
    assert_exactly_once(settings, events, [today])


def test_sigterm_finishes_the_transaction_and_exits(settings: Settings, group: str, tmp_path: Path) -> None:
    events = known_events(20_000, seed=13, days=[datetime.now(UTC).date()])
    produce_events(settings, events)
    raw = start_service(RAW, f"raw-{group}", tmp_path, SMALL_BATCHES)
    wait_until(lambda: stored(settings, f"raw-{group}") > 0, what="first commit")
    assert raw.stop(signal.SIGTERM, timeout=10) == 0
    [(rows,)] = query(settings, "SELECT count(*) FROM events_raw")
    # What is stored is exactly what the stored offsets say: the last transaction was whole.
    assert rows == stored(settings, f"raw-{group}")
    assert "finishing the current batch" in raw.output()


def test_late_events_count_on_their_own_day_in_both_paths(settings: Settings, group: str, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    late_day = today - timedelta(days=3)
    on_time = known_events(3_000, seed=17, days=[today])
    late = known_events(1_000, seed=19, days=[late_day])
    raw = start_service(RAW, f"raw-{group}", tmp_path)
    streaming = start_service(STREAMING, f"stream-{group}", tmp_path)
    try:
        produce_events(settings, on_time)
        wait_caught_up(settings, f"raw-{group}")
        wait_caught_up(settings, f"stream-{group}")
        produce_events(settings, late)
        wait_caught_up(settings, f"raw-{group}")
        wait_caught_up(settings, f"stream-{group}")
    finally:
        raw.stop()
        streaming.stop()
    streaming_rows = metrics_table(settings, "metrics_streaming_daily")
    assert {k: v for k, v in streaming_rows.items() if k[0] == late_day} == expected_metrics(late)
    assert run_command("batch.batch_metrics", "--from", late_day.isoformat()).returncode == 0
    result = run_command("batch.compare_batch_vs_stream", "--from", late_day.isoformat())
    assert result.returncode == 0, result.stdout
    assert f"batch vs streaming for {late_day}" in result.stdout and f"batch vs streaming for {today}" in result.stdout
    assert metrics_table(settings, "metrics_batch_daily") == expected_metrics(on_time + late)


def test_generator_reports_what_it_could_not_deliver_when_the_broker_is_gone(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("needs the embedded stack, whose broker the test can stop and start")
    assert run_command("data_generators.generate_users", "--count", "10").returncode == 0
    raw = start_service(RAW, f"raw-{group}", tmp_path)
    wait_until(lambda: "assigned" in raw.output(), what="consumer assignment")
    log = tmp_path / "generator.log"
    generator = start_generator(log, "--rate", "500", "--flush-timeout", "2")
    kafka_port = int(settings.kafka.bootstrap_servers.rsplit(":", 1)[1])
    try:
        wait_until(lambda: stored(settings, f"raw-{group}") > 0, what="events flowing")
        assert stack.stop_tansu(Path(data_dir))
        wait_until(lambda: "Kafka:" in log.read_text() or "Connect" in log.read_text(), timeout=30, what="generator to notice")
        assert generator.poll() is None and raw.process.poll() is None, "a process died when the broker went away"
        generator.send_signal(signal.SIGINT)
        assert generator.wait(timeout=30) == 1
        output = log.read_text()
        assert "not delivered" in output and ", 0 not delivered" not in output
        assert raw.stop(timeout=30) == 0, raw.output()
    finally:
        if generator.poll() is None:
            generator.kill()
        if raw.process.poll() is None:
            raw.process.kill()
        stack.up(Path(data_dir), pg_port=urlsplit(settings.database.url).port, kafka_port=kafka_port, fast=True)


def assert_a_restart_stores_each_once(settings: Settings, raw_group: str, tmp_path: Path, sent: int) -> None:
    """After a consumer stopped on an error, a plain restart stores every event exactly once."""
    again = start_service(RAW, raw_group, tmp_path)
    try:
        wait_caught_up(settings, raw_group)
    finally:
        assert again.stop() == 0, again.output()
    [(total, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    assert total == distinct == sent


def test_a_batch_that_keeps_timing_out_stops_the_consumer_with_the_reason(settings: Settings, group: str, tmp_path: Path) -> None:
    """A statement timeout is not retried blindly: the batch is split, and when the halves time
    out too the consumer stops with exit status 2, names the timeout and stores nothing; once the
    cause is gone a restart stores every event exactly once."""
    raw_group = f"raw-{group}"
    events = known_events(600, seed=53, days=[datetime.now(UTC).date()])
    produce_events(settings, events)
    query(
        settings,
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES (%s, %s, 0, 0), (%s, %s, 1, 0),"
        " (%s, %s, 2, 0)",
        (raw_group, settings.kafka.topic) * 3,
    )
    # Another session holds the consumer's progress rows: every commit waits, then times out.
    holder = db.connect(settings.database)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT * FROM consumer_offsets WHERE consumer_group = %s FOR UPDATE", (raw_group,))
        raw = start_service(RAW, raw_group, tmp_path, {"DB_STATEMENT_TIMEOUT_MS": "500", "SINK_BATCH_SIZE": "200"})
        assert raw.process.wait(timeout=120) == 2, raw.output()
    finally:
        holder.rollback()
        holder.close()
    output = raw.output()
    assert "statement timeout (DB_STATEMENT_TIMEOUT_MS=500)" in output and "Traceback" not in output
    assert query(settings, "SELECT count(*) FROM events_raw") == [(0,)]
    assert stored(settings, raw_group) == 0
    assert_a_restart_stores_each_once(settings, raw_group, tmp_path, len(events))


def test_a_batch_refused_for_no_fault_of_its_data_stops_the_consumer_in_one_line(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """A full disk (SQLSTATE 53100, raised here by a trigger) is neither the data's fault nor
    passing: the consumer exits 2 with one line naming the SQLSTATE, never the traceback whose
    COPY context quotes a row; once the cause is gone a restart stores every event exactly once."""
    raw_group = f"raw-{group}"
    planted = "planted.person@example.org"
    events = [
        msgspec.structs.replace(e, metadata={"note": planted})
        for e in known_events(300, seed=61, days=[datetime.now(UTC).date()])
    ]
    produce_events(settings, events)
    query(
        settings,
        "CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$;"
        " CREATE TRIGGER test_disk_full BEFORE INSERT ON events_raw FOR EACH ROW EXECUTE FUNCTION test_disk_full()",
    )
    try:
        raw = start_service(RAW, raw_group, tmp_path)
        assert raw.process.wait(timeout=120) == 2, raw.output()
    finally:
        query(settings, "DROP TRIGGER test_disk_full ON events_raw; DROP FUNCTION test_disk_full()")
    output = raw.output()
    assert "53100: could not extend file" in output and "restart to resume" in output, output
    assert "Traceback" not in output and planted not in output and "COPY" not in output
    assert stored(settings, raw_group) == 0
    assert_a_restart_stores_each_once(settings, raw_group, tmp_path, len(events))


def test_postgres_gone_longer_than_the_retry_budget_stops_the_consumer(settings: Settings, group: str, tmp_path: Path) -> None:
    """Transient failures are retried for DB_RETRY_TIMEOUT_S, then the consumer exits 2 with a clear
    line; the batch in hand is not stored and a restart resumes without loss or double count."""
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("needs the embedded stack, whose PostgreSQL the test can stop and start")
    raw_group = f"raw-{group}"
    events = known_events(2_000, seed=59, days=[datetime.now(UTC).date()])
    produce_events(settings, events[:1_000])
    raw = start_service(RAW, raw_group, tmp_path, {"DB_RETRY_TIMEOUT_S": "2", **SMALL_BATCHES})
    port = urlsplit(settings.database.url).port
    try:
        wait_caught_up(settings, raw_group)
        assert stack.stop_postgres(Path(data_dir))
        produce_events(settings, events[1_000:])
        assert raw.process.wait(timeout=60) == 2, raw.output()
    finally:
        stack.start_postgres(Path(data_dir), port, fast=True)
        if raw.process.poll() is None:
            raw.process.kill()
    output = raw.output()
    assert "kept failing for 2 s" in output and "a restart resumes" in output and "Traceback" not in output
    assert query(settings, "SELECT count(*) FROM events_raw") == [(1_000,)]
    assert_a_restart_stores_each_once(settings, raw_group, tmp_path, len(events))


def test_a_consumer_that_lost_its_broker_says_so_and_recovers(settings: Settings, group: str, tmp_path: Path) -> None:
    """No healthy "events stored" lines against a dead broker: the log and consumers.status say the
    broker is unreachable, and the consumer resumes once it answers again."""
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("needs the embedded stack, whose broker the test can stop and start")
    raw_group = f"raw-{group}"
    kafka_port = int(settings.kafka.bootstrap_servers.rsplit(":", 1)[1])
    raw = start_service(RAW, raw_group, tmp_path)
    try:
        wait_until(lambda: "assigned" in raw.output(), what="consumer assignment")
        assert stack.stop_tansu(Path(data_dir))
        wait_until(lambda: "lost the broker" in raw.output(), timeout=60, what="the consumer to notice")
        assert raw.process.poll() is None, raw.output()
        wait_until(lambda: "BROKER UNREACHABLE" in run_command("consumers.status").stdout, timeout=30, what="status to show it")
        status = run_command("consumers.status")
        assert status.returncode == 0, status.stderr
        assert f"{raw_group}: 1 running" in status.stdout and "lag unknown" in status.stdout
    finally:
        stack.up(Path(data_dir), pg_port=urlsplit(settings.database.url).port, kafka_port=kafka_port, fast=True)
    kafka.ensure_topic(settings.kafka)
    wait_until(lambda: "answers again" in raw.output(), timeout=60, what="the consumer to reconnect")
    events = known_events(500, seed=61, days=[datetime.now(UTC).date()])
    produce_events(settings, events)
    try:
        wait_caught_up(settings, raw_group)
        wait_until(lambda: "BROKER UNREACHABLE" not in run_command("consumers.status").stdout, timeout=30, what="status to clear")
    finally:
        assert raw.stop() == 0, raw.output()
    assert query(settings, "SELECT count(*) FROM events_raw") == [(len(events),)]


@pytest.mark.parametrize(("module", "table"), [(RAW, "events_raw"), (STREAMING, "consumer_offsets")])
def test_a_statement_timeout_while_starting_stops_the_consumer_in_one_line(
    settings: Settings, group: str, tmp_path: Path, module: str, table: str
) -> None:
    """A table locked by another session while a consumer starts (the raw sink's session
    preparation reads events_raw, every consumer reads its stored offsets on assignment) ends
    in the statement timeout: exit status 2 and the batch path's one line, never a traceback."""
    produce_events(settings, known_events(10, seed=59, days=[datetime.now(UTC).date()]))
    holder = db.connect(settings.database)
    try:
        with holder.cursor() as cur:
            cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
        consumer = start_service(module, f"{group}-{table}", tmp_path, {"DB_STATEMENT_TIMEOUT_MS": "500"})
        assert consumer.process.wait(timeout=120) == 2, consumer.output()
    finally:
        holder.rollback()
        holder.close()
    output = consumer.output()
    assert "statement timeout (DB_STATEMENT_TIMEOUT_MS=500)" in output, output
    assert "Traceback" not in output
