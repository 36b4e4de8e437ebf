"""The pipeline bench (``make bench``, ``SCALE=small|large``): every stage on the same generated
events, each against a baseline measured in the same run, printed as ratios and written to
``bench/results/bench-<scale>.md`` and ``.json``.

An isolated embedded stack is started in a temporary folder (never ``.local/``). Stages:
users seeded; generator vs a bare producer of pre-serialised messages, in both of its modes
(the uniform mix, whose events the later stages read, and ``--behaviour shoppers``); raw sink vs a bare COPY
and vs one INSERT and commit per event (the original design); streaming metrics vs Quix Streams
(its own virtual environment); batch metrics vs a bare GROUP BY; GDPR erasure of 10,000 requests
and ``--watch`` latency; the HTTP collector vs what a user would write instead (FastAPI,
pydantic, confluent-kafka with acks=all answering after delivery), and the latency of both at half
their maximum rate; the redactor's worst event within the metadata
bounds vs its normal case (bench.redaction). The consumers run with
``CONSENT_MODE=required`` and 90 % of the users consenting. Peak memory (RSS) of every process, and its growth over the run.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from psycopg2 import sql

from bench.harness import (
    Row,
    Sampler,
    Stack,
    commit_rate,
    log,
    machine,
    python_module,
    ratio_row,
    run_measured,
    seed_users,
    write_results,
)
from core import db, kafka, progress
from core.config import PROJECT_ROOT, Settings
from data_generators.events import EventFactory
from data_generators.shoppers import ShopperFactory

QUIX_VENV = PROJECT_ROOT / "bench" / ".venv-quix"
QUIX_REQUIREMENT = "quixstreams==3.28.1"
SCALES = {
    "small": {"users": 1_000_000, "events": 1_000_000},
    "large": {"users": 1_000_000, "events": 10_000_000},
}
# The original design's consumer (one INSERT and commit per event) is slow by design: a few
# thousand events measure its rate well enough.
NAIVE_EVENTS = 3_000
ERASURES = 10_000
# Load levels of the freshness stage (share of the slower consumer's capacity, p99 target in s)
# and how long the generator runs at each.
FRESHNESS_LEVELS = ((0.5, 0.5), (0.8, 2.0))
FRESHNESS_SECONDS = 20
# Events of the backlog on which both consumers' shared capacity is measured first.
FRESHNESS_CAPACITY_EVENTS = 500_000
# Then how long the generator produces at that rate while they run, for the capacity under load.
CAPACITY_LOAD_SECONDS = 15
# Not counted at the start of each load stage: processes starting. librdkafka's idempotent
# producer asks for its producer id on a 500 ms timer, so its first events are accepted (their
# delivery reports come) half a second after they were stamped; the consumers' first fetches.
FRESHNESS_WARMUP_S = 2.0
WATCH_REQUESTS = 40
# The release path (analytics.dp): a 30-day daily-KPIs-by-country release at epsilon 1 against
# the same read and a plain group by; its cost at most RELEASE_TARGET times the aggregate's.
RELEASE_DAYS = 30
RELEASE_EPSILON = 1.0
RELEASE_TARGET = 2.0
RELEASE_REPEATS = 10
RELEASE_ANALYST = "bench:releases"
# The collector against what a user would write instead (bench.fastapi_baseline): at least this
# many times its events/s, and both answering within this p99 at half their own maximum rate.
COLLECTOR_TARGET = 1.5
COLLECTOR_P99_MS = 50


class PipelineBench:
    """The stages of ``make bench`` on one stack, each adding its rows to the results table."""

    def __init__(self, scale: str, stack: Stack) -> None:
        self.scale = SCALES[scale]
        self.scale_name = scale
        self.stack = stack
        self.rows: list[Row] = []
        self.topic = stack.topic
        self.capacity: dict[str, float] = {}  # events/s of each consumer, measured by its stage

    # -- stages ---------------------------------------------------------------------------

    def users(self) -> None:
        self.rows.append(seed_users(self.stack, self.scale["users"]))

    def generator(self) -> None:
        """The generator in both modes, each against a bare producer of pre-serialised messages of
        the same mode: the design's uniform mix (its events feed every later stage) and the
        shoppers' sessions (``--behaviour shoppers``, the demo's, to a topic of its own)."""
        self.rows.append(self._generator_row("uniform", self.topic, "realistic events"))
        self.rows.append(self._generator_row("shoppers", "bench_shoppers", "shoppers' sessions, --behaviour shoppers"))

    def _generator_row(self, behaviour: str, topic: str, label: str) -> Row:
        n = self.scale["events"]
        processes = os.cpu_count() or 1
        mode = ("--behaviour", behaviour)
        every_core = ("--rate", "0", "--count", str(n), "--seed", "1", "--processes", str(processes), *mode)
        kafka.ensure_topic(self.stack.settings.kafka, topic, 3)
        log(f"generator ({behaviour}): {n:,} events, {processes} processes (one per core)")
        _s, output, peak, growth = run_measured(
            python_module("data_generators.generate_events", *every_core), {**self.stack.env, "EVENTS_TOPIC": topic}
        )
        rate = float(re.findall(r"\(([\d,]+)/s", output)[-1].replace(",", ""))
        single_n = min(n, 1_000_000)
        log(f"generator ({behaviour}) again with one process: {single_n:,} events to a separate topic")
        kafka.ensure_topic(self.stack.settings.kafka, f"bench_single_{behaviour}", 3)
        _s, output, _p, _g = run_measured(
            python_module("data_generators.generate_events", "--rate", "0", "--count", str(single_n), "--seed", "2", *mode),
            {**self.stack.env, "EVENTS_TOPIC": f"bench_single_{behaviour}"},
        )
        single = float(re.findall(r"\(([\d,]+)/s", output)[-1].replace(",", ""))
        log(f"baseline: bare producer of pre-serialised messages ({behaviour})")
        bare = self._bare_producer(behaviour, min(n, 1_000_000))
        row = ratio_row(f"generator ({label}, {processes} processes)", rate, "bare producer, pre-serialised", bare, 0.6)
        row.peak_rss_mib, row.rss_growth_pct = peak, growth
        row.notes = f"one generator process: {single:,.0f} events/s = {single / bare:.2f}x the bare producer (one process)"
        return row

    def _bare_producer(self, behaviour: str, n: int) -> float:
        """Events/s of a bare producer handing ``n`` pre-serialised messages of ``behaviour``'s
        factory to the broker, on a topic of its own."""
        topic = f"bench_bare_{behaviour}"
        kafka.ensure_topic(self.stack.settings.kafka, topic, 3)
        # The same number of users: how well a batch compresses depends on it.
        users = [str(uuid.uuid4()) for _ in range(self.scale["users"])]
        factory = EventFactory(users, seed=2) if behaviour == "uniform" else ShopperFactory(users, None, seed=2)
        now = datetime.now(UTC)
        pairs: list[tuple[bytes, bytes]] = []
        while len(pairs) < n:
            pairs += [(m["key"], m["value"]) for m in factory.messages(min(n - len(pairs), 100_000), now)]
        producer = kafka.producer(self.stack.settings.kafka)
        started = time.perf_counter()
        for key, value in pairs:
            while True:
                try:
                    producer.produce(topic, value, key)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        producer.flush(60)
        return len(pairs) / (time.perf_counter() - started)

    def _consume(self, module: str, group: str) -> tuple[float, float | None, float | None]:
        """Run a consumer until it has stored the whole topic; rate from its commit log."""
        process = subprocess.Popen(
            python_module(module, "--group", group),
            cwd=PROJECT_ROOT,
            env=self.stack.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sampler = Sampler(process.pid)
        total = sum(kafka.end_offsets(self.stack.settings.kafka, self.topic).values())
        while True:
            with db.connection(self.stack.settings.database) as conn, conn, conn.cursor() as cur:
                done = progress.total_stored(cur, group)
            if done >= total:
                break
            if process.poll() is not None:
                raise RuntimeError(f"{module} exited early with {process.returncode}")
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        peak, growth = sampler.stop()
        return commit_rate(self.stack, group), peak, growth

    def raw_sink(self) -> None:
        log("raw sink (exactly-once into events_raw)")
        rate, peak, growth = self._consume("consumers.store_raw_events", "bench-raw")
        self.capacity["raw"] = rate
        [(rows,)] = self.stack.query("SELECT count(*) FROM events_raw")
        log("baseline: bare COPY of the same rows into an identical table (partitioned by day alike)")
        buffer = io.StringIO()
        with db.connection(self.stack.settings.database) as conn:
            with conn, conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS bench_copy")
                cur.execute("CREATE TABLE bench_copy (LIKE events_raw INCLUDING ALL) PARTITION BY RANGE (event_date)")
                cur.execute("CREATE TABLE bench_copy_default PARTITION OF bench_copy DEFAULT")
                cur.execute("SELECT DISTINCT event_date FROM events_raw")
                for (day,) in cur.fetchall():
                    cur.execute(
                        sql.SQL("CREATE TABLE {} PARTITION OF bench_copy FOR VALUES FROM (%s) TO (%s)").format(
                            sql.Identifier(f"bench_copy_{day:%Y%m%d}")
                        ),
                        (day, day + timedelta(days=1)),
                    )
                cur.copy_expert("COPY (SELECT * FROM events_raw) TO STDOUT", buffer)
            buffer.seek(0)
            started = time.perf_counter()
            with conn, conn.cursor() as cur:
                cur.copy_expert("COPY bench_copy FROM STDIN", buffer)
            bare = int(rows) / (time.perf_counter() - started)
            with conn, conn.cursor() as cur:
                cur.execute("DROP TABLE bench_copy")
        naive = self._naive_consumer()
        row = ratio_row("raw sink (events stored/s, exactly-once)", rate, "bare COPY", bare, 0.5)
        row.peak_rss_mib, row.rss_growth_pct = peak, growth
        row.notes = f"{rate / naive:,.0f}x the one-INSERT-and-commit-per-event consumer ({naive:,.0f} events/s); target >= 40x"
        self.rows.append(row)
        self.rows.append(ratio_row("raw sink vs the original design", rate, "one INSERT + commit per event", naive, 40))

    def _naive_consumer(self) -> float:
        """The original design, reimplemented: consume, INSERT one row, commit, per event."""
        log(f"baseline: one INSERT and commit per event ({NAIVE_EVENTS:,} events)")
        consumer = kafka.consumer(self.stack.settings.kafka, "bench-naive")
        consumer.subscribe([self.topic])
        done = 0
        with db.connection(self.stack.settings.database) as conn:
            with conn, conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS bench_naive")
                cur.execute("CREATE TABLE bench_naive (LIKE events_raw INCLUDING ALL)")
            started = None
            while done < NAIVE_EVENTS:
                for message in consumer.consume(100, 1.0):
                    if message.error() or done >= NAIVE_EVENTS:
                        continue
                    started = started or time.perf_counter()
                    e = json.loads(message.value() or b"null")
                    with conn, conn.cursor() as cur:
                        cur.execute(
                            "INSERT INTO bench_naive (event_id, user_id, event_type, event_timestamp, event_date, amount,"
                            " metadata, kafka_partition, kafka_offset) VALUES (%s, %s, %s, %s, %s::timestamptz::date, %s, %s, %s, %s)",
                            (
                                e["event_id"], e["user_id"], e["event_type"], e["event_timestamp"], e["event_timestamp"],
                                e["amount"], json.dumps(e["metadata"]), message.partition(), message.offset(),
                            ),
                        )  # fmt: skip
                    done += 1
            rate = done / (time.perf_counter() - (started or time.perf_counter()))
            with conn, conn.cursor() as cur:
                cur.execute("DROP TABLE bench_naive")
        consumer.close()
        return rate

    def streaming(self) -> None:
        log("streaming metrics (exactly-once into metrics_streaming_daily)")
        rate, peak, growth = self._consume("consumers.streaming_metrics", "bench-stream")
        self.capacity["streaming"] = rate
        quix = self._quix()
        if quix is None:
            row = Row(
                "streaming metrics (events/s, exactly-once)",
                f"{rate:,.0f} events/s",
                "Quix Streams: not run",
                None,
                ">= 1.5x",
                None,
            )
            row.notes = "the Quix Streams environment could not be installed"
        else:
            row = ratio_row("streaming metrics (events/s, exactly-once)", rate, "Quix Streams, in-memory sum", quix, 1.5)
        ceiling = self._bare_consume()
        row.notes = (
            f"a bare consume loop that does nothing with the messages reads this topic at {ceiling:,.0f} events/s: "
            f"the streaming consumer runs at {rate / ceiling:.0%} of what the broker serves"
        )
        row.peak_rss_mib, row.rss_growth_pct = peak, growth
        self.rows.append(row)

    def freshness(self) -> None:
        """End-to-end freshness under sustained load at 50 % and 80 % of the capacity of the whole
        pipeline on this host: both consumers run on a fresh topic while the generator produces at
        that rate; each batch records when its oldest event was produced and when it committed.
        Every event of a batch is counted with the batch's oldest one (an upper bound). The first
        FRESHNESS_WARMUP_S of each stage are not counted (see FRESHNESS_WARMUP_S)."""
        backlog, capacity = self._shared_capacity()
        for share, target_s in FRESHNESS_LEVELS:
            rate = int(capacity * share)
            topic = f"bench_fresh_{round(share * 100)}"
            log(f"freshness at {share:.0%} load: {rate:,} events/s for {FRESHNESS_SECONDS} s on {topic}")
            groups = {"raw": f"fresh-raw-{topic}", "streaming": f"fresh-stream-{topic}"}
            self._run_live(topic, groups, rate, FRESHNESS_SECONDS)
            measured = {name: self._freshness(group) for name, group in groups.items()}
            worst_p99 = max(p99 for _p50, p99, _max in measured.values())
            self.rows.append(
                Row(
                    f"freshness at {share:.0%} load ({rate:,} events/s), produced to visible",
                    "; ".join(
                        f"{name} p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms, max {top * 1000:,.0f} ms"
                        for name, (p50, p99, top) in measured.items()
                    ),
                    f"pipeline capacity on this host: {capacity:,.0f} events/s",
                    None,
                    f"p99 < {target_s * 1000:,.0f} ms",
                    worst_p99 < target_s,
                    notes=(
                        f"the capacity is what the slower consumer sustains while the generator produces on the same "
                        f"{os.cpu_count()} cores (on a backlog, with the cores to themselves, both together reach "
                        f"{backlog:,.0f} events/s); the first {FRESHNESS_WARMUP_S:.0f} s of the stage are not counted"
                    ),
                )
            )

    def _run_live(self, topic: str, groups: dict[str, str], rate: int, seconds: float) -> tuple[float, float]:
        """Both consumers on ``topic`` (fresh), the generator producing ``rate`` events/s for
        ``seconds`` meanwhile, until every event is stored; return when the generator ran (epoch s)."""
        kafka.ensure_topic(self.stack.settings.kafka, topic)
        env = {**self.stack.env, "EVENTS_TOPIC": topic}
        consumers = self._start_consumers(topic, groups)
        try:
            self._wait_running(list(groups.values()), topic)
            count = int(rate * seconds)
            started = time.time()
            run_measured(python_module("data_generators.generate_events", "--rate", str(rate), "--count", str(count)), env)
            ended = time.time()
            self._wait_stored(groups, count)
        finally:
            for process in consumers:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        return started, ended

    def _start_consumers(self, topic: str, groups: dict[str, str]) -> list[subprocess.Popen[bytes]]:
        env = {**self.stack.env, "EVENTS_TOPIC": topic}
        modules = {"raw": "consumers.store_raw_events", "streaming": "consumers.streaming_metrics"}
        return [
            subprocess.Popen(
                python_module(modules[name], "--group", group),
                cwd=PROJECT_ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, group in groups.items()
        ]

    def _wait_stored(self, groups: dict[str, str], count: int) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with db.connection(self.stack.settings.database, application_name="bench") as conn, conn, conn.cursor() as cur:
                done = [progress.total_stored(cur, g) for g in groups.values()]
            if min(done) >= count:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the consumers did not store {count:,} events within 600 s")

    def _shared_capacity(self) -> tuple[float, float]:
        """Events/s of the slower consumer while both run at once, as they do in production: on a
        backlog (the cores to themselves), then while the generator produces at that rate on the
        same cores, as it does in the load stages. Return both; the second (never above the
        first) is the capacity the load levels are shares of."""
        topic = "bench_fresh_capacity"
        count = min(self.scale["events"], FRESHNESS_CAPACITY_EVENTS)
        log(f"freshness: capacity of both consumers together over {count:,} events on {topic}")
        kafka.ensure_topic(self.stack.settings.kafka, topic)
        env = {**self.stack.env, "EVENTS_TOPIC": topic}
        run_measured(python_module("data_generators.generate_events", "--rate", "0", "--count", str(count)), env)
        groups = {"raw": f"cap-raw-{topic}", "streaming": f"cap-stream-{topic}"}
        consumers = self._start_consumers(topic, groups)
        try:
            self._wait_stored(groups, count)
        finally:
            for process in consumers:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        backlog = float(min(commit_rate(self.stack, group) for group in groups.values()))
        # Then live: the generator at the backlog rate. A pipeline that keeps up stores what is
        # produced; one that cannot falls behind, and what it stores meanwhile is its capacity.
        topic = "bench_fresh_load"
        log(f"freshness: capacity while the generator produces {backlog:,.0f} events/s for {CAPACITY_LOAD_SECONDS} s")
        groups = {"raw": f"load-raw-{topic}", "streaming": f"load-stream-{topic}"}
        started, ended = self._run_live(topic, groups, int(backlog), CAPACITY_LOAD_SECONDS)
        since = started + FRESHNESS_WARMUP_S
        live = []
        for group in groups.values():
            [(events,)] = self.stack.query(
                "SELECT coalesce(sum(events), 0) FROM consumer_batches WHERE consumer_group = %s"
                " AND committed_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
                (group, since, ended),
            )
            live.append(int(events) / max(ended - since, 1e-6))
        return backlog, min(backlog, *live)

    def _wait_running(self, groups: list[str], topic: str) -> None:
        """Until every group has a live instance (subscribed, its heartbeat written)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [(live,)] = self.stack.query(
                "SELECT count(DISTINCT consumer_group) FROM consumer_instances WHERE topic = %s AND consumer_group = ANY(%s)",
                (topic, groups),
            )
            if int(live) == len(groups):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the consumers of {topic} did not start within 60 s")

    def _freshness(self, group: str) -> tuple[float, float, float]:
        """p50, p99 and max seconds from production to commit, each event weighted as its batch's
        oldest, over the batches whose oldest event came FRESHNESS_WARMUP_S after the first."""
        rows = self.stack.query(
            "SELECT extract(epoch FROM committed_at - oldest_event_at)::float8, events FROM consumer_batches"
            " WHERE consumer_group = %s AND events > 0 AND oldest_event_at >= %s::interval + ("
            "  SELECT min(oldest_event_at) FROM consumer_batches WHERE consumer_group = %s) ORDER BY 1",
            (group, f"{FRESHNESS_WARMUP_S} seconds", group),
        )
        total = sum(int(n) for _s, n in rows)
        if not total:
            raise RuntimeError(f"{group} recorded no batch with timestamps")

        def quantile(q: float) -> float:
            seen = 0
            for seconds, n in rows:
                seen += int(n)
                if seen >= q * total:
                    return float(seconds)
            return float(rows[-1][0])

        return quantile(0.5), quantile(0.99), float(rows[-1][0])

    def _bare_consume(self) -> float:
        """Context for the streaming row: how fast the broker hands out the topic at all."""
        total = sum(kafka.end_offsets(self.stack.settings.kafka, self.topic).values())
        log(f"context: a bare consume loop over the same {total:,} events")
        consumer = kafka.consumer(self.stack.settings.kafka, "bench-bare-consume")
        consumer.subscribe([self.topic])
        done, started, last = 0, 0.0, 0.0
        while done < total:
            messages = consumer.consume(50_000, 5.0)
            if messages and not started:
                started = time.perf_counter()
            done += len(messages)
            last = time.perf_counter()
        consumer.close()
        return done / max(last - started, 1e-9)

    def _quix(self) -> float | None:
        python = QUIX_VENV / "bin" / "python"
        if not python.exists():
            log(f"creating {QUIX_VENV} with {QUIX_REQUIREMENT} (it pins confluent-kafka below 2.13)")
            result = subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=False)
            result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", QUIX_REQUIREMENT], check=False)
            if result.returncode != 0:
                return None
        total = sum(kafka.end_offsets(self.stack.settings.kafka, self.topic).values())
        log(f"baseline: Quix Streams over the same {total:,} events")
        output = subprocess.run(
            [str(python), str(PROJECT_ROOT / "bench" / "quix_baseline.py"), "--broker", self.stack.settings.kafka.bootstrap_servers,
             "--topic", self.topic, "--count", str(total)],
            capture_output=True, text=True, check=True, timeout=3600,
        ).stdout  # fmt: skip
        result = json.loads(output.strip().splitlines()[-1])
        return float(result["events"]) / float(result["seconds"])

    def batch(self) -> None:
        [(day, events)] = self.stack.query("SELECT event_date, count(*) FROM events_raw GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
        log(f"batch metrics for {day} ({events:,} events) vs a bare GROUP BY")
        from batch.metrics import recompute_day

        bare_times, batch_times = [], []
        with db.connection(self.stack.settings.database) as conn:
            for _ in range(3):  # alternate, best of three: the first run also warms the cache
                with conn, conn.cursor() as cur:
                    started = time.perf_counter()
                    cur.execute(
                        "SELECT event_date, event_type, count(*), sum(amount) FROM events_raw WHERE event_date = %s GROUP BY 1, 2",
                        (day,),
                    )
                    cur.fetchall()
                    bare_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                recompute_day(conn, day)
                batch_times.append(time.perf_counter() - started)
        bare, ours = min(bare_times), min(batch_times)
        self.rows.append(
            Row(
                f"batch metrics, one day of {events:,} events",
                f"{ours:.2f} s",
                f"bare GROUP BY: {bare:.2f} s",
                ours / bare,
                "<= 1.5x the bare query's time",
                ours / bare <= 1.5,
            )
        )
        self.summaries_upkeep(day, int(events))

    def summaries_upkeep(self, day: date, events: int) -> None:
        """The analyses' per-person-day summaries kept as the day closes: batch.metrics.close_day
        (the day's metrics and its summaries, one transaction) against recompute_day (the metrics
        alone), both as the batch job's login, alternated, best of three. Shown, with no target:
        the summaries sort each person's day where the metrics only group (docs/analytics.md)."""
        from batch.metrics import close_day, recompute_day

        window = self.stack.settings.analytics_funnel_window_s
        log(f"summaries' upkeep for {day} ({events:,} events): close_day vs recompute_day alone")
        metrics_times, close_times = [], []
        with db.connection(self.stack.settings.database, application_name="bench", role=db.BATCH_ROLE) as conn:
            for _ in range(3):
                started = time.perf_counter()
                recompute_day(conn, day)
                metrics_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                close_day(conn, day, funnel_window_s=window)
                close_times.append(time.perf_counter() - started)
        [(people,)] = self.stack.query("SELECT count(*) FROM analytics_person_days WHERE event_date = %s", (day,))
        metrics, closed = min(metrics_times), min(close_times)
        row = Row(
            f"summaries' nightly upkeep, one day of {events:,} events (close_day)",
            f"{closed:.2f} s ({closed / max(events / 1e6, 1e-9):.1f} s per million events)",
            f"metrics recompute alone (recompute_day): {metrics:.2f} s",
            closed / metrics if metrics else None,
            "none (shown)",
            None,
        )
        row.notes = (
            f"the day's metrics and its {int(people):,} per-person-day summaries in one transaction, as batch_metrics "
            f"runs it (funnel window {window} s), best of three alternated with the metrics alone"
        )
        self.rows.append(row)

    def releases(self) -> None:
        log("DP releases vs the same non-private aggregate")
        self.rows.extend(release_rows(self.stack.settings))

    def gdpr(self) -> None:
        self.stack.settle()
        log(f"GDPR: {ERASURES:,} erasure requests")
        self.stack.query(
            "INSERT INTO privacy_requests (email) SELECT email FROM users_pii WHERE email IS NOT NULL ORDER BY user_id LIMIT %s",
            (ERASURES,),
        )
        seconds, _out, peak, _g = run_measured(python_module("gdpr.process_privacy_requests"), self.stack.env)
        [(done,)] = self.stack.query("SELECT count(*) FROM privacy_requests WHERE status = 'completed'")
        self.rows.append(
            Row(
                f"GDPR erasure, {ERASURES:,} requests",
                f"{seconds:.1f} s ({int(done):,} completed)",
                "target only",
                None,
                "< 10 s",
                seconds < 10 and int(done) == ERASURES,
                peak,
            )
        )
        log(f"GDPR --watch latency over {WATCH_REQUESTS} requests")
        watcher = subprocess.Popen(
            python_module("gdpr.process_privacy_requests", "--watch"), cwd=PROJECT_ROOT, env={**self.stack.env, "LOG_LEVEL": "INFO"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert watcher.stderr is not None
        for line in watcher.stderr:
            if "watching privacy_requests" in line:
                break
        emails = [
            e for (e,) in self.stack.query("SELECT email FROM users_pii WHERE email IS NOT NULL LIMIT %s", (WATCH_REQUESTS,))
        ]
        for email in emails:
            self.stack.query("INSERT INTO privacy_requests (email) VALUES (%s)", (email,))
            time.sleep(0.1)  # a request every 100 ms: the load pattern, not a wait for a result
        deadline = time.monotonic() + 60
        while (
            self.stack.query("SELECT count(*) FROM privacy_requests WHERE status = 'pending'")[0][0]
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=30)
        latencies = [
            float(s)
            for (s,) in self.stack.query(
                "SELECT extract(epoch FROM a.at - r.requested_at) FROM privacy_audit_log a JOIN privacy_requests r"
                " ON r.id = a.request_id WHERE a.action = 'completed' ORDER BY r.id DESC LIMIT %s",
                (len(emails),),
            )
        ]
        p95 = statistics.quantiles(latencies, n=20)[-1]
        self.rows.append(
            Row("GDPR --watch latency", f"p95 {p95 * 1000:,.0f} ms (max {max(latencies) * 1000:,.0f} ms)", "target only", None,
                "p95 < 1 s", p95 < 1.0)
        )  # fmt: skip

    def collector(self) -> None:
        """POST /v1/events against what a user would write instead (FastAPI, pydantic and
        confluent-kafka, acks=all, answering after delivery), then the latency of both at half
        their own maximum rate (bench.collector), on a topic of its own."""
        from bench import collector as http_bench

        topic = "bench_http"
        kafka.ensure_topic(self.stack.settings.kafka, topic, 3)
        settings = self.stack.settings.model_copy(update={"kafka": self.stack.settings.kafka.model_copy(update={"topic": topic})})
        log("collector: POST /v1/events, batches of 100, 32 connections, vs FastAPI + pydantic + confluent-kafka")
        result = http_bench.measure(settings, seconds=10, clients=32)
        row = ratio_row(
            "collector (events/s through POST /v1/events, batches of 100)",
            result["collector_events_per_s"],
            "FastAPI + pydantic + confluent-kafka (acks=all, answering after delivery)",
            result["baseline_events_per_s"],
            COLLECTOR_TARGET,
        )
        row.peak_rss_mib = result["collector_peak_rss_mib"]
        row.notes = (
            "every event is validated by the consumers' own parser and acknowledged by the broker (acks=all) before the "
            "202, as the baseline's are by pydantic and the broker (bench.fastapi_baseline; it has no write keys, rate "
            f"limits or consent check; peak RSS {result['baseline_peak_rss_mib']:,.0f} MiB); the collector's server "
            f"answering 202 after only reading the body: {result['read_body_events_per_s']:,.0f} events/s"
        )
        self.rows.append(row)
        worst = max(result["p99_ms"], result["baseline_p99_ms"])
        self.rows.append(
            Row(
                f"collector latency at half its maximum rate ({result['latency_rate_events_per_s']:,.0f} events/s)",
                f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms",
                f"FastAPI baseline at half its rate ({result['baseline_latency_rate_events_per_s']:,.0f} events/s): "
                f"p50 {result['baseline_p50_ms']:.1f} ms, p99 {result['baseline_p99_ms']:.1f} ms",
                None,
                f"p99 < {COLLECTOR_P99_MS} ms (both)",
                worst < COLLECTOR_P99_MS,
                result["collector_peak_rss_mib"],
            )
        )

    def redaction(self) -> None:
        """The redactor's worst event within the metadata bounds against its normal case (an
        event of a checkout form), same process, same run (bench.redaction)."""
        from bench import redaction

        log("redactor: worst case within the bounds vs a checkout form's event")
        result = redaction.measure(self.stack.settings.metadata_limits)
        ratio = result["ratio"]
        self.rows.append(
            Row(
                f"redactor worst case per event ({result['worst_case']})",
                f"{result['worst_us']:,.0f} us",
                f"normal case (a checkout form's event): {result['normal_us']:,.0f} us",
                ratio,
                f"<= {redaction.WORST_TO_NORMAL_TARGET:.0f}x",
                ratio <= redaction.WORST_TO_NORMAL_TARGET,
                notes=f"the raw sink's encode (serialise, prefilter, redact, CSV) costs "
                f"{result['raw_sink_encode_us_per_event']:.2f} us per event of the generator's traffic",
            )
        )

    def end_to_end_check(self) -> None:
        day = self.stack.query("SELECT max(event_date) FROM events_raw")[0][0]
        result = subprocess.run(
            python_module("batch.compare_batch_vs_stream", day.isoformat(), "--raw-group", "bench-raw", "--streaming-group", "bench-stream"),
            cwd=PROJECT_ROOT, env=self.stack.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        self.rows.append(
            Row("batch vs streaming after the run", "agree exactly" if result.returncode == 0 else "DRIFT", "", None, "0 difference",
                result.returncode == 0)
        )  # fmt: skip

    # -- output ---------------------------------------------------------------------------

    def report(self, wall: float) -> str:
        lines = [
            f"# Benchmark ({self.scale_name}: {self.scale['users']:,} users, {self.scale['events']:,} events)",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; embedded stack (Tansu + PostgreSQL) on the same host; "
            f"whole run {wall / 60:.1f} min. Reproduce: `make bench` (or `make bench SCALE=large`).",
            "",
            "| stage | measured | baseline (same run) | ratio | target | ok | peak RSS | RSS growth |",
            "|---|---:|---:|---:|---|---|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.stage} | {r.measured} | {r.baseline} | {'' if r.ratio is None else f'{r.ratio:.2f}x'} | {r.target} | "
                f"{'' if r.passed is None else ('yes' if r.passed else 'NO')} | "
                f"{'' if r.peak_rss_mib is None else f'{r.peak_rss_mib:,.0f} MiB'} | "
                f"{'' if r.rss_growth_pct is None else f'{r.rss_growth_pct:+.0f} %'} |"
            )
        notes = [f"- {r.stage}: {r.notes}" for r in self.rows if r.notes]
        if notes:
            lines += ["", *notes]
        return "\n".join(lines) + "\n"


def release_rows(settings: Settings) -> list[Row]:
    """The release path's rows on the day summaries in ``settings``' database: a release's cost
    (its measurement already planned: analytics.dp plans a query shape once) against the same
    non-private aggregate (the same bounded read, then a plain Polars group by), and releases per
    second. The releases are made in a transaction rolled back: nothing is spent or kept."""
    from analytics import dp, ledger

    [(newest,)] = _query(settings, "SELECT max(event_date) FROM analytics_person_days")
    if newest is None:
        raise RuntimeError("no day summaries to release")
    last, bounds = newest, settings.release
    first = last - timedelta(days=RELEASE_DAYS - 1)
    params = {"first": first, "last": last, "max_days": bounds.max_days, "max_events": bounds.max_events_per_day,
              "max_purchases": bounds.max_purchases_per_day, "max_spend": bounds.max_spend_per_day}  # fmt: skip
    schema = {"event_date": pl.Date, "country": pl.String, "events": pl.Int64, "purchases": pl.Int64, "revenue_cents": pl.Int64}
    plain_times, release_times = [], []
    with db.connection(settings.database, application_name="bench") as conn, conn.cursor() as cur:
        ledger.set_budget(cur, RELEASE_ANALYST, 1e6, "bench")
        ledger.set_budget(cur, ledger.OVERALL, 1e6, "bench")
        dp.clear_plans()
        started = time.perf_counter()
        dp.release_daily_kpis(cur, RELEASE_ANALYST, first=first, last=last, epsilon=RELEASE_EPSILON, bounds=bounds)
        cold = time.perf_counter() - started
        for _ in range(RELEASE_REPEATS):  # alternated, each the median of its runs
            started = time.perf_counter()
            cur.execute(dp.BOUNDED_DAYS, params)
            frame = pl.LazyFrame(cur.fetchall(), schema=schema, orient="row")
            frame.group_by(["event_date", "country"]).agg(
                pl.len(), pl.col("events", "purchases", "revenue_cents").sum()
            ).collect()
            plain_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            dp.release_daily_kpis(cur, RELEASE_ANALYST, first=first, last=last, epsilon=RELEASE_EPSILON, bounds=bounds)
            release_times.append(time.perf_counter() - started)
        [(rows,)] = _query(settings, dp.BOUNDED_DAYS.join(["SELECT count(*) FROM (", ") r"]), params)
        conn.rollback()  # nothing spent, nothing kept
    plain, release = statistics.median(plain_times), statistics.median(release_times)
    cells = RELEASE_DAYS * len(bounds.countries)
    cost = Row(
        f"DP release, {RELEASE_DAYS} days x {len(bounds.countries)} countries at epsilon {RELEASE_EPSILON:g}",
        f"{release * 1000:,.0f} ms",
        f"same read + plain group by: {plain * 1000:,.0f} ms",
        release / plain,
        f"<= {RELEASE_TARGET:g}x the aggregate's time",
        release / plain <= RELEASE_TARGET,
    )
    cost.notes = (
        f"{int(rows):,} bounded person-day rows, {cells} public cells x 4 figures; the first release of the shape "
        f"(OpenDP planning it) took {cold:.2f} s, the others reuse its measurement; median of {RELEASE_REPEATS}, alternated"
    )
    rate = Row(
        f"DP releases per second ({RELEASE_DAYS}-day country breakdown, epsilon {RELEASE_EPSILON:g})",
        f"{RELEASE_REPEATS / sum(release_times):.1f} releases/s",
        f"{len(plain_times) / sum(plain_times):.1f} plain aggregates/s",
        None,
        "none (shown)",
        None,
    )
    rate.notes = "each release with its budget check and ledger row, in one transaction rolled back at the end"
    return [cost, rate]


def _query(settings: Settings, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with db.connection(settings.database, application_name="bench") as conn, conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return list(cur.fetchall())


def main(scale: str, events: int | None, *, keep: bool) -> None:
    """``python -m bench.run --scale small|large``: every stage, one failed stage recorded as
    failed while the others still run."""
    started = time.perf_counter()
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-")))
    bench = PipelineBench(scale, stack)
    if events:
        bench.scale = {**bench.scale, "events": events}
    try:
        stack.start()
        for step in (
            bench.users,
            bench.generator,
            bench.raw_sink,
            bench.streaming,
            bench.freshness,
            bench.batch,
            bench.releases,
            bench.end_to_end_check,
            bench.gdpr,
            bench.collector,
            bench.redaction,
        ):
            try:
                step()
            except Exception as e:  # one failed stage must not lose the others' results
                log(f"stage {step.__name__} failed: {e}")
                bench.rows.append(Row(step.__name__, "FAILED", "", None, "", False, notes=str(e).splitlines()[0][:200]))
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        stack.stop(keep=keep)
    write_results(
        scale,
        bench.report(time.perf_counter() - started),
        {"scale": scale, **bench.scale, "rows": [asdict(r) for r in bench.rows]},
    )
