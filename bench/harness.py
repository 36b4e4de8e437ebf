"""What every bench composes: an isolated embedded stack (start, stop, query, settle), the users
seeded as production has them, a command run to completion with its memory sampled, a consumer
group's rate from its commit log, the results table's row, and the results written to
``bench/results/`` and into ``docs/benchmarks.md`` (bench.doc). The benches (bench.pipeline,
bench.scaleout, bench.history) use these and import no other bench; bench.run only chooses one."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import psycopg2
from psycopg2 import sql

import devstack
from bench import doc
from core import db
from core.config import PROJECT_ROOT, Settings, child_environment, load_settings

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
# The consumers run as production does (CONSENT_MODE=required) with this share of the users
# consenting: every event is checked against the consent ledger, and a tenth are dropped.
CONSENT_SHARE = 0.9
# How many seconds seeding the users may take (the "users seeded" row's target).
SEED_TARGET_S = 60


@dataclass
class Row:
    """One line of the results table."""

    stage: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    passed: bool | None
    peak_rss_mib: float | None = None
    rss_growth_pct: float | None = None
    notes: str = ""


@dataclass
class Sampler:
    """Samples the RSS of a process and its children (summed) every 0.2 s: peak, and growth
    from the first third to the end."""

    pid: int
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            process = psutil.Process(self.pid)
            while not self._stop.is_set():
                total = process.memory_info().rss
                for child in process.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:  # a child that just ended
                        continue
                self.samples.append(total)
                self._stop.wait(0.2)
        except psutil.Error:
            return

    def stop(self) -> tuple[float | None, float | None]:
        self._stop.set()
        self._thread.join()
        if not self.samples:
            return None, None
        samples = [s for s in self.samples if s]  # 0: sampled while the process was ending
        if not samples:
            return None, None
        peak = max(samples) / 2**20
        # From a third of the run to nine tenths: the steady state, not start-up or shutdown
        # (child processes exit before their parent, a consumer drops its buffers as it stops).
        third, late = samples[len(samples) // 3], samples[len(samples) * 9 // 10]
        growth = (late - third) / third * 100 if len(samples) >= 10 else None
        return peak, growth


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, str, float | None, float | None]:
    """Run to completion; return (seconds, stdout+stderr, peak RSS MiB, RSS growth %)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(process.pid)
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    peak, growth = sampler.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{output[-2000:]}")
    return seconds, output, peak, growth


def ratio_row(stage: str, value: float, base_name: str, base: float, target: float, *, unit: str = "events/s") -> Row:
    ratio = value / base if base else None
    return Row(
        stage,
        f"{value:,.0f} {unit}",
        f"{base_name}: {base:,.0f} {unit}",
        ratio,
        f">= {target}x",
        None if ratio is None else ratio >= target,
    )


class Stack:
    """An isolated embedded stack (Tansu + PostgreSQL) in ``data_dir``, never ``.local/``: the
    environment its commands run with, its settings, and the statements the benches run on it."""

    env: dict[str, str]
    settings: Settings

    def __init__(self, data_dir: Path, topic: str = "bench_events") -> None:
        self.data_dir = data_dir
        self.topic = topic

    def start(self) -> None:
        log(f"starting an isolated embedded stack in {self.data_dir}")
        info = devstack.up(self.data_dir, pg_port=devstack.free_port(), kafka_port=devstack.free_port(), topic=self.topic)
        self.env = child_environment(
            {
                **info.env(),
                "EVENTS_TOPIC": self.topic,
                "STACK_FILE": str(info.stack_file),  # its own stack: never .local/, and the dev key is accepted
                "LOG_LEVEL": "WARNING",
                "CONSENT_MODE": "required",
                "REPORTS_DIR": str(self.data_dir / "reports"),
                # A bare COPY of ten million rows runs for minutes: no service timeout here.
                "DB_STATEMENT_TIMEOUT_MS": str(6 * 3600 * 1000),
                # Instances run side by side (scale-out): none takes its default metrics port. The
                # instruments are updated all the same, so their cost is in every figure.
                "METRICS_ENABLED": "false",
            }
        )
        # The bench's own process runs library code too (the baselines): it sees the same stack.
        os.environ.update(
            {
                k: self.env[k]
                for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "EVENTS_TOPIC", "STACK_FILE", "DB_STATEMENT_TIMEOUT_MS")
            }
        )
        self.settings = load_settings()

    def stop(self, *, keep: bool) -> None:
        """Stop the stack and remove its folder (ten million events leave several GB behind),
        or with ``keep`` leave both for a look."""
        if keep:
            log(f"stack kept in {self.data_dir}; stop it with python -m devstack --data-dir {self.data_dir} down")
            return
        devstack.down(self.data_dir)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def query(self, statement: str | sql.Composable, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement in its own transaction (composed ones too: identifiers through
        psycopg2.sql); its rows, if it returns any."""
        with db.connection(self.settings.database, application_name="bench") as conn, conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []

    def as_superuser(self, statement: str | sql.Composable) -> None:
        """One statement only the stack's superuser may run (CHECKPOINT, ALTER DATABASE), outside
        a transaction."""
        url = urlsplit(self.settings.database.url)
        admin = psycopg2.connect(devstack.superuser_url(self.data_dir, url.port or 5432))
        try:
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(statement)
        finally:
            admin.close()

    def settle(self) -> None:
        """Let the earlier stages' writes land before the next one is timed: a database that has
        been running has vacuumed its tables and checkpointed, and the operating system has
        written its dirty pages. Measured without this, the erasure paid for ten million rows of
        writeback (25 to 63 s for the same work that takes 8 s once settled)."""
        log("settling: VACUUM ANALYZE, CHECKPOINT, sync")
        with db.connection(self.settings.database, application_name="bench") as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM (ANALYZE) events_raw, users_pii, users_public, analytics_person_days")
        self.as_superuser("CHECKPOINT")
        os.sync()


def seed_users(stack: Stack, count: int) -> Row:
    """``count`` users, CONSENT_SHARE of them with analytics consent, seeded by the generator; the
    results table's "users seeded" row."""
    log(f"seeding {count:,} users, {CONSENT_SHARE:.0%} of them with analytics consent")
    seconds, _out, peak, _g = run_measured(
        python_module("data_generators.generate_users", "--count", str(count), "--consent-share", str(CONSENT_SHARE)), stack.env
    )
    return Row(
        "users seeded",
        f"{count:,} in {seconds:.1f} s ({count / seconds:,.0f}/s)",
        "target only",
        None,
        f"< {SEED_TARGET_S} s",
        seconds < SEED_TARGET_S,
        peak,
    )


def commit_rate(stack: Stack, group: str) -> float:
    """A consumer group's steady events/s from its commit log: from the end of its first batch
    to its last commit, without start-up."""
    [(first, last, events, first_events)] = stack.query(
        "SELECT min(committed_at), max(committed_at), sum(events),"
        " (array_agg(events ORDER BY committed_at))[1] FROM consumer_batches WHERE consumer_group = %s",
        (group,),
    )
    return (int(events) - int(first_events)) / max(float((last - first).total_seconds()), 1e-6)


def machine() -> str:
    """The host, for a report's header."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def write_results(scale: str, text: str, data: dict[str, Any]) -> None:
    """The report, printed and written to ``bench/results/bench-<scale>.md``, its figures to
    ``.json``, and the report into its block of ``docs/benchmarks.md`` (bench.doc)."""
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"bench-{scale}"
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    log(f"results written to {stem}.md and .json")
    try:
        doc.update(scale, text)
    except doc.MissingBlock as e:
        raise SystemExit(f"the results are in {stem}.md, but {doc.DOC} was not updated: {e}") from e
    log(f"{doc.DOC} updated: commit it with the change it measures")
