"""``make bench SCALE=history``: the costs that must stay flat as history grows (issue 15).

The same days of history (400 by default) are measured at two sizes, 10M and then 50M events
(``--small-events``, ``--large-events``), on an isolated embedded stack (bench.harnesss, as
every bench starts it). Each operation is timed at both sizes and passes when the larger history costs at most
1.5x the smaller one: the batch job for one day, the daily report of that day, the erasure of one
person and of 10,000 people, ``consumers.status`` and the retention run.

The analyses of ``analytics/`` are measured too (bench.analyses): their summaries are built for
every day (the first build's cost is shown), then the retention matrix for 52 weeks, the ordered
funnel for 30 days and the customer histories are answered from the summaries and by a naive SQL
over ``events_raw``; the answers must be the same, the summaries' wall time and pages flat from
one size to the other, and at the larger size at least 10x faster than the naive SQL.

What each operation has to do is the same at both sizes; only the history around it grows (a
day five times as busy would cost a per-day job five times as much, which says nothing about
history):

* the newest 14 days (the day measured, the days the report compares it with, its 14-day trend)
  hold the same events at both sizes;
* retention removes the oldest 3 days at each size (``RETENTION_DAYS`` set so): days that also
  hold the same events at both sizes;
* the people erased at each size are different people, reserved so that the events added for the
  larger size are never theirs: each has as many events at 50M as at 10M;
* the events added for the larger size (so that events_raw then holds 50M) go to the days in
  between.

The traffic is shoppers' (bench.traffic): a fixed population of ``--people`` among the users with
analytics consent (seeded by ``data_generators.generate_users``), each a BG/NBD person of
``data_generators.population`` born at a uniform moment of the history, visiting in sessions (page
views, a cart, a purchase) at the weekly rhythm until they drop out; the rates are scaled by one
factor so that the smaller size holds its events. The larger size adds visits of the same people,
in the same lives, on the days in between. The sessions are drawn in numpy and staged by COPY;
their events are made on the server (INSERT ... SELECT), one statement per day and transaction, by
one connection per core, always written through the parent table ``events_raw`` (partitioned by
day or not; missing daily partitions are created first), with the generator's metadata. Results
go to ``bench/results/bench-history.md`` and ``.json`` and ``docs/benchmarks.md``'s history block.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psutil
from psycopg2 import sql

from bench import analyses, traffic
from bench.harness import Stack, log, machine, python_module, seed_users, write_results
from core import cli, consent, db, partitions
from core.config import PROJECT_ROOT
from data_generators.events import BROWSERS, CATEGORIES, DEVICES
from data_generators.population import Parameters

# The report reads its day, the day before, the same weekday a week before and 14 days of
# metrics: these newest days hold the same events at both sizes.
RECENT_DAYS = 14
# Days retention removes at each size, oldest first; they too hold the same events at both sizes.
RETENTION_STEP_DAYS = 3
# A cost that stays flat: the larger history may cost at most this much more.
TARGET_RATIO = 1.5
# Shown without a target: the nightly index cleanup after a large erasure reads every index of
# every day the erased people's events are on (gdpr.vacuum.finish_vacuum).
UNTARGETED = frozenset({"finish_vacuum", "summaries_build"})
# The summaries' answers against the naive SQL over events_raw at the larger size: at least this much faster.
NAIVE_TARGET = 10.0
# A consumer commits an event within a second or two of its time.
INGEST_DELAY_S = 2.0
# Users with analytics consent, numbered in a fixed order: the first ones are reserved for erasure.
USERS_TABLE = "bench_history_users"
# Batch job, report and status change nothing: each runs this often and counts its median.
DEFAULT_REPEATS = 3

# -- the plan: pure, and unit-tested ----------------------------------------------------------


@dataclass(frozen=True)
class HistoryPlan:
    """The days of the history, oldest first, and what each size does with them."""

    days: tuple[date, ...]
    step: int = RETENTION_STEP_DAYS
    recent: int = RECENT_DAYS

    @classmethod
    def ending_before(cls, today: date, days: int) -> HistoryPlan:
        """``days`` whole UTC days, the last of them yesterday."""
        plan = cls(tuple(today - timedelta(days=days - i) for i in range(days)))
        if days < 2 * plan.step + plan.recent + 1:
            raise ValueError(
                f"--days must be at least {2 * plan.step + plan.recent + 1} (recent and retention days, and one more)"
            )
        return plan

    @property
    def measured_day(self) -> date:
        """The day the batch job and the report are measured on: the newest."""
        return self.days[-1]

    def removed(self, size: int) -> tuple[date, ...]:
        """The days retention removes at size 0 (small) or 1 (large)."""
        return self.days[size * self.step : (size + 1) * self.step]

    def first_kept(self, size: int) -> date:
        """The oldest day left after retention at ``size``."""
        return self.days[(size + 1) * self.step]

    def growing(self) -> tuple[date, date]:
        """The days the larger size adds events to, [first, last): those between the ones
        retention removes at either size and the recent ones, whose events must stay what they were."""
        return self.days[2 * self.step], self.days[-self.recent]


def erasure_people(erasures: int, size: int) -> tuple[range, range]:
    """Positions (in the numbered users) of the one person and of the ``erasures`` people erased
    at size 0 or 1: different people each time, all among the first ``reserved_people``."""
    start = size * (erasures + 1)
    return range(start, start + 1), range(start + 1, start + 1 + erasures)


def reserved_people(erasures: int) -> int:
    """The users erased at either size: the events added for the larger size are not theirs."""
    return 2 * (erasures + 1)


def flatness(small: float | None, large: float | None, target: float = TARGET_RATIO) -> tuple[float | None, bool | None]:
    """(large / small, whether that is at most ``target``); (None, None) when either is missing."""
    if small is None or large is None or small <= 0:
        return None, None
    ratio = large / small
    return ratio, ratio <= target


def size_label(events: int) -> str:
    """10_000_000 -> "10M", 200_000 -> "200k", 1_234 -> "1,234"."""
    if events and events % 1_000_000 == 0:
        return f"{events // 1_000_000}M"
    if events and events % 1_000 == 0:
        return f"{events // 1_000}k"
    return f"{events:,}"


# -- measurements -----------------------------------------------------------------------------


def run_child(command: list[str], env: dict[str, str]) -> tuple[float, str, float]:
    """bench.harness's run_measured, with the peak RSS the kernel kept for the child (``ru_maxrss``
    of ``wait4``) instead of Sampler's: a command that ends within 0.2 s is never sampled
    running (Sampler gave 6 MiB for a Python process). Return (seconds, stdout+stderr, peak MiB)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    process.stdout.close()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{output[-2000:]}")
    return seconds, output, usage.ru_maxrss / 1024  # KiB on Linux


@dataclass(frozen=True)
class IoCounts:
    """What one command cost in pages: PostgreSQL's block counts (pg_stat_database: pages it
    touched, those it read in from outside its shared buffers, the time those reads took, with
    track_io_timing on) and the disk's own reads over the same time (the machine's counters:
    the pages the operating system's cache did not hold). The bench runs nothing else meanwhile."""

    touched: int
    read: int
    read_s: float
    disk_mib: float
    disk_s: float

    def __sub__(self, other: IoCounts) -> IoCounts:
        return IoCounts(
            self.touched - other.touched,
            self.read - other.read,
            self.read_s - other.read_s,
            self.disk_mib - other.disk_mib,
            self.disk_s - other.disk_s,
        )

    def describe(self) -> str:
        return (
            f"{self.touched:,} pages touched, {self.read:,} read in ({self.read_s:.1f} s), "
            f"{self.disk_mib:,.0f} MiB from disk ({self.disk_s:.1f} s of disk reads)"
        )


@dataclass
class Result:
    """One operation at one size."""

    seconds: float | None = None
    peak_rss_mib: float | None = None
    note: str = ""
    io: IoCounts | None = None  # what the database did for it (the one-shot operations)


@dataclass
class Operation:
    """One line of the table: an operation at both sizes."""

    name: str
    results: list[Result] = field(default_factory=lambda: [Result(), Result()])

    @property
    def ratio(self) -> float | None:
        return flatness(self.results[0].seconds, self.results[1].seconds)[0]

    targeted: bool = True  # False: shown for what it costs, with no target (its work is the history's)

    @property
    def passed(self) -> bool | None:
        return flatness(self.results[0].seconds, self.results[1].seconds)[1] if self.targeted else None


@dataclass
class Load:
    """One load of events: how many, how long."""

    what: str
    events: int
    seconds: float

    @property
    def seconds_per_million(self) -> float:
        return self.seconds / (self.events / 1e6) if self.events else 0.0


class HistoryBench:
    """Its own loads and measurements on one stack."""

    def __init__(self, args: argparse.Namespace, stack: Stack) -> None:
        self.stack = stack
        self.args = args
        self.plan = HistoryPlan.ending_before(cli.today_utc(), args.days)
        self.sizes = (args.small_events, args.large_events)
        self.operations: dict[str, Operation] = {}
        self.loads: list[Load] = []
        # The naive SQL's result for each analysis at each size, and whether the answers agreed.
        self.naive: dict[str, list[Result]] = {}
        self.pool = 0  # users with analytics consent, numbered in USERS_TABLE
        # The shoppers: the first --people of those users, their lives drawn at the first load.
        self.params = Parameters()
        self.rng = np.random.default_rng(args.seed)
        self.clock = traffic.Clock(self.plan.days)
        self.lives: traffic.Lives | None = None
        self.partitioned = False
        # Each operation's line in the table, in the order they are measured.
        self.names = {
            "batch": "batch metrics, one day",
            "report": "daily report, one day",
            "erasure_one": "erasure of one person",
            "erasure_many": f"erasure of {args.erasures:,} people",
            "finish_vacuum": f"index cleanup after the {args.erasures:,} erasures (nightly)",
            "status": "consumers.status",
            "retention": f"retention run ({self.plan.step} oldest days)",
            "upkeep": "person days after retention (its days out of the lists)",
            "summaries_build": "analyses' summaries, first build of every day (batch_metrics --from --to)",
            **{a.key: f"{a.name} (summaries)" for a in analyses.analyses(self.plan.measured_day, 1)},
        }

    # -- set-up ---------------------------------------------------------------------------

    def seed_users(self) -> None:
        seeded = seed_users(self.stack, self.args.users)
        log(f"seeded {seeded.measured}; numbering the users with consent")
        table = sql.Identifier(USERS_TABLE)
        with db.connection(self.stack.settings.database, application_name="bench") as conn, conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            # md5 of the id: a fixed order that is no particular kind of user.
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} AS SELECT (row_number() OVER (ORDER BY md5(user_id::text)) - 1)::int AS n, user_id"
                    " FROM (SELECT DISTINCT user_id FROM consent_ledger WHERE purpose = %s AND granted) AS c"
                ).format(table),
                (consent.ANALYTICS,),
            )
            cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (n)").format(table))
            cur.execute(sql.SQL("ANALYZE {}").format(table))
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
            self.pool = int((cur.fetchone() or (0,))[0])
        reserved = reserved_people(self.args.erasures)
        if self.pool <= reserved:
            raise RuntimeError(
                f"{self.pool:,} users with consent cannot hold {reserved:,} people to erase and others: raise --users"
            )
        if not reserved < self.args.people <= self.pool:
            raise RuntimeError(
                f"--people must be more than the {reserved:,} people reserved for erasure and at most the "
                f"{self.pool:,} users with consent"
            )

    def ensure_partitions(self) -> None:
        """The history's daily partitions, when events_raw is partitioned (sql/021), created the
        way an operator loading history does (core.partitions): rows then go to their day."""
        [(partitioned,)] = self.stack.query(
            "SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = 'events_raw'::regclass)"
        )
        self.partitioned = bool(partitioned)
        if not partitioned:
            return
        with db.connection(self.stack.settings.database, application_name="bench") as conn, conn, conn.cursor() as cur:
            created = partitions.create_partitions(cur, min(self.plan.days), max(self.plan.days))
        log(f"events_raw is partitioned: created {created} daily partitions")

    def stage(self, sessions: traffic.Sessions) -> list[tuple[date, int, int]]:
        """The sessions into their staging table (COPY, replacing the last load's); return the
        days that have sessions with their events and the events before them (Kafka offsets)."""
        table = sql.Identifier(traffic.SESSIONS_TABLE)
        with db.connection(self.stack.settings.database, application_name="bench") as conn, conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            cur.execute(
                sql.SQL(
                    "CREATE UNLOGGED TABLE {} (day date NOT NULL, n int NOT NULL, start_ms bigint NOT NULL,"
                    " views int NOT NULL, kind smallint NOT NULL, cents bigint NOT NULL)"
                ).format(table)
            )
            cur.copy_expert(
                sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(table).as_string(cur),
                io.StringIO(traffic.sessions_csv(sessions)),
            )
            cur.execute(sql.SQL("CREATE INDEX ON {} (day)").format(table))
            cur.execute(sql.SQL("ANALYZE {}").format(table))
        sizes = sessions.views + (sessions.kind >= 1) + (sessions.kind == 2)
        days, where = np.unique(sessions.days(), return_inverse=True)
        events = np.bincount(where, weights=sizes).astype(np.int64).tolist()
        epoch = date(1970, 1, 1).toordinal()
        bases = list(accumulate(events, initial=0))
        return [(date.fromordinal(epoch + int(d)), n, base) for d, n, base in zip(days.tolist(), events, bases, strict=False)]

    def load(self, what: str, sessions: traffic.Sessions, offset: int) -> None:
        """Insert the events of ``sessions``, one statement per day (bench.traffic.INSERT_DAY);
        Kafka offsets continue from ``offset`` events."""
        started = time.perf_counter()
        days = self.stage(sessions)
        staged = time.perf_counter() - started
        jobs: SimpleQueue[tuple[date, int, int]] = SimpleQueue()
        for day, count, base in days:
            jobs.put((day, count, offset + base))
        total = sessions.events
        workers = max(1, min(self.args.load_workers, len(days)))
        log(
            f"loading {what}: {len(sessions):,} sessions staged in {staged:.1f} s, {total:,} events over {len(days)} days, {workers} connections"
        )
        progress = cli.Progress(f"[bench] {what}", total=total, every_s=10)
        lock = threading.Lock()
        stop = threading.Event()
        statement = traffic.insert_day(USERS_TABLE)
        params = {
            "devices": list(DEVICES),
            "browsers": list(BROWSERS),
            "categories": list(CATEGORIES),
            "partitions": self.stack.settings.kafka.partitions,
            "delay": INGEST_DELAY_S,
            **traffic.STEP_PARAMS,
        }

        def work() -> None:
            with db.connection(self.stack.settings.database, application_name="bench-history-load") as conn:
                with conn, conn.cursor() as cur:
                    # A day's events are sorted by time in memory, not in temporary files.
                    cur.execute("SET work_mem = '64MB'")
                while not stop.is_set():
                    try:
                        day, count, base = jobs.get_nowait()
                    except Empty:
                        return
                    with conn, conn.cursor() as cur:
                        cur.execute(statement, {**params, "day": day, "offset": base})
                    with lock:
                        progress.advance(count, extra=f"last {day}")

        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(work) for _ in range(workers)]
            try:
                for future in futures:
                    future.result()
            finally:
                stop.set()  # after a failed day or Ctrl+C the others end with their day, not the load
        seconds = time.perf_counter() - started
        progress.show("done")
        self.stack.query(sql.SQL("DROP TABLE {}").format(sql.Identifier(traffic.SESSIONS_TABLE)))
        self.loads.append(Load(what, total, seconds))
        log(f"{what}: {total:,} events in {seconds:.1f} s ({seconds / max(total / 1e6, 1e-9):.1f} s per million)")

    def load_small(self) -> None:
        """The people's lives and every session of them over the history."""
        self.ensure_partitions()
        started = time.perf_counter()
        self.lives = traffic.draw_lives(self.args.people, len(self.plan.days), self.sizes[0], self.params, self.rng)
        sessions = traffic.lifetime_sessions(self.lives, self.clock, self.params, self.rng)
        log(
            f"drew {self.args.people:,} people's lives in {time.perf_counter() - started:.1f} s: rates x {self.lives.scale:.4f}, "
            f"{len(sessions):,} sessions, {int((sessions.kind == 2).sum()):,} purchases"
        )
        self.load(f"{size_label(self.sizes[0])} events of shoppers", sessions, 0)

    def load_large(self) -> None:
        """More visits of the same people on the days in between, none by the people reserved for erasure."""
        [(stored,)] = self.stack.query("SELECT count(*) FROM events_raw")
        added = self.sizes[1] - int(stored)
        first, last = (self.clock.midnight(d) for d in self.plan.growing())
        if self.lives is None:
            raise RuntimeError("the larger size adds to the smaller one's shoppers: load the smaller size first")
        reserved = reserved_people(self.args.erasures)
        sessions = traffic.extra_sessions(
            self.lives, self.clock, first=first, last=last, skip=reserved, events=added, params=self.params, rng=self.rng
        )
        self.load(f"{sessions.events:,} more events of the same shoppers", sessions, int(stored))

    # -- measurements ---------------------------------------------------------------------

    def io_counts(self) -> IoCounts:
        """The database's block counts now, once the last command's counts have landed: a backend
        sends them as it exits, just after it leaves pg_stat_activity, so they are read until two
        reads agree (a second at most)."""
        statement = (
            "SELECT blks_hit + blks_read, blks_read, blk_read_time FROM pg_stat_database WHERE datname = current_database()"
        )
        last = None
        deadline = time.monotonic() + 1.0
        while True:
            [(touched, read, read_ms)] = self.stack.query(statement)
            disk = psutil.disk_io_counters()
            disk_mib, disk_s = (disk.read_bytes / 2**20, disk.read_time / 1000) if disk else (0.0, 0.0)
            counts = IoCounts(int(touched), int(read), float(read_ms) / 1000, disk_mib, disk_s)
            if counts == last or time.monotonic() > deadline:
                return counts
            last = counts
            time.sleep(0.1)

    def track_io_timing(self) -> None:
        """Time the database's reads for every later session (superuser only)."""
        database = urlsplit(self.stack.settings.database.url).path.lstrip("/")
        self.stack.as_superuser(sql.SQL("ALTER DATABASE {} SET track_io_timing = on").format(sql.Identifier(database)))

    def counted(self, command: list[str], env: dict[str, str] | None = None) -> tuple[float, str, float, IoCounts]:
        """run_child, with the database's block counts over the command."""
        before = self.io_counts()
        seconds, output, peak = run_child(command, env or self.stack.env)
        return seconds, output, peak, self.io_counts() - before

    def record(self, key: str, size: int, result: Result) -> None:
        """``result`` of operation ``key`` (a step's name without ``measure_``) at ``size``."""
        operation = self.operations.setdefault(key, Operation(self.names[key], targeted=key not in UNTARGETED))
        operation.results[size] = result
        shown = "FAILED" if result.seconds is None else f"{result.seconds:.2f} s"
        log(f"{operation.name} at {size_label(self.sizes[size])}: {shown}{f' ({result.note})' if result.note else ''}")

    def repeated(self, command: list[str], env: dict[str, str] | None = None) -> Result:
        """Median wall time and highest peak RSS of ``--repeats`` runs of a command that gives the
        same result every time (the first run also warms the cache, as a scheduled job's would not)."""
        runs = [run_child(command, env or self.stack.env) for _ in range(self.args.repeats)]
        return Result(statistics.median(s for s, _o, _p in runs), max(peak for _s, _o, peak in runs))

    def build_person_days(self, size: int) -> None:
        """The lists of the days each person's events are on (gdpr.person_days), as the nightly
        job keeps them: built here for every closed day the load wrote, in one pass over them."""
        [(events,)] = self.stack.query("SELECT count(*) FROM events_raw")
        log(f"building the lists of each person's event days over {int(events):,} events")
        seconds, output, _peak = run_child(python_module("gdpr.person_days"), self.stack.env)
        log(output.strip().splitlines()[-1] if output.strip() else "person days: no output")
        self.loads.append(Load(f"person days at {size_label(self.sizes[size])} (one pass, after the load)", int(events), seconds))

    def measure_batch(self, size: int) -> None:
        day = self.plan.measured_day
        [(events,)] = self.stack.query("SELECT count(*) FROM events_raw WHERE event_date = %s", (day,))
        result = self.repeated(python_module("batch.batch_metrics", day.isoformat()))
        result.note = f"{day}, {int(events):,} events"
        self.record("batch", size, result)

    def measure_report(self, size: int) -> None:
        day = self.plan.measured_day
        self.record("report", size, self.repeated(python_module("reports.generate_daily_report", day.isoformat())))

    def _erase(self, people: range) -> Result:
        """File an erasure request for each of ``people`` (positions in USERS_TABLE) as bench.pipeline's
        gdpr stage does, then time the processor over them."""
        users = sql.Identifier(USERS_TABLE)
        rows = self.stack.query(
            sql.SQL(
                "INSERT INTO privacy_requests (email) SELECT p.email FROM {} AS b JOIN users_pii AS p USING (user_id)"
                " WHERE b.n >= %s AND b.n < %s ORDER BY b.n RETURNING id"
            ).format(users),
            (people.start, people.stop),
        )
        ids = [int(i) for (i,) in rows]
        [(events,)] = self.stack.query(
            sql.SQL("SELECT count(*) FROM events_raw WHERE user_id IN (SELECT user_id FROM {} WHERE n >= %s AND n < %s)").format(
                users
            ),
            (people.start, people.stop),
        )
        seconds, _out, peak, io = self.counted(python_module("gdpr.process_privacy_requests"))
        [(completed,)] = self.stack.query(
            "SELECT count(*) FROM privacy_requests WHERE id = ANY(%s) AND status = 'completed'", (ids,)
        )
        if int(completed) != len(people):
            raise RuntimeError(f"{int(completed):,} of {len(people):,} erasures completed")
        return Result(seconds, peak, f"{int(events):,} events re-keyed", io)

    def measure_erasure_one(self, size: int) -> None:
        self.record("erasure_one", size, self._erase(erasure_people(self.args.erasures, size)[0]))

    def measure_erasure_many(self, size: int) -> None:
        self.record("erasure_many", size, self._erase(erasure_people(self.args.erasures, size)[1]))

    def measure_finish_vacuum(self, size: int) -> None:
        """The index cleanup the large erasure left for the scheduler's nightly job: every index of
        every day the erased people's events are on, so the whole history's here. Shown, not
        held to the target."""
        [(queued,)] = self.stack.query("SELECT count(*) FROM erasure_index_cleanup")
        seconds, _out, peak, io = self.counted(python_module("gdpr.process_privacy_requests", "--finish-vacuum"))
        self.record("finish_vacuum", size, Result(seconds, peak, f"{int(queued)} partitions", io))

    def measure_status(self, size: int) -> None:
        self.record("status", size, self.repeated(python_module("consumers.status")))

    def measure_retention(self, size: int) -> None:
        """RETENTION_DAYS is chosen now, not at the start (a run may cross midnight UTC), to
        remove exactly this size's days."""
        first_kept = self.plan.first_kept(size)
        keep = (cli.today_utc() - first_kept).days
        removed = self.plan.removed(size)
        [(events,)] = self.stack.query("SELECT count(*) FROM events_raw WHERE event_date < %s", (first_kept,))
        seconds, output, peak, io = self.counted(python_module("gdpr.retention"), {**self.stack.env, "RETENTION_DAYS": str(keep)})
        [(left,)] = self.stack.query("SELECT count(*) FROM events_raw WHERE event_date < %s", (first_kept,))
        if int(left):
            raise RuntimeError(f"retention left {int(left):,} events before {first_kept}:\n{output[-1000:]}")
        note = f"{int(events):,} events of {removed[0]}..{removed[-1]} removed (RETENTION_DAYS={keep})"
        self.record("retention", size, Result(seconds, peak, note, io))

    def measure_upkeep(self, size: int) -> None:
        """The nightly gdpr.person_days after retention: the days retention dropped leave every
        list they are in (no day is left to build)."""
        [(people,)] = self.stack.query("SELECT count(*) FROM person_days WHERE days[1] < %s", (self.plan.first_kept(size),))
        seconds, _out, peak, io = self.counted(python_module("gdpr.person_days"))
        self.record("upkeep", size, Result(seconds, peak, f"{int(people):,} people's lists", io))

    def build_summaries(self, size: int) -> None:
        """The analyses' per-person-day summaries of every day the history holds, as a first build
        would make them: ``batch_metrics --from --to`` (close_day per day: its metrics and its
        summaries; there is no bulk path). Shown, not held to the target: it is the history's work."""
        [(first, last, events)] = self.stack.query("SELECT min(event_date), max(event_date), count(*) FROM events_raw")
        log(f"building the analyses' summaries of {first}..{last} ({int(events):,} events)")
        seconds, _out, peak, io = self.counted(python_module("batch.batch_metrics", "--from", str(first), "--to", str(last)))
        [(rows,)] = self.stack.query("SELECT count(*) FROM analytics_person_days")
        note = f"{(last - first).days + 1} days, {int(events):,} events, {int(rows):,} person-days"
        self.record("summaries_build", size, Result(seconds, peak, note, io))
        self.loads.append(Load(f"analyses' summaries at {size_label(self.sizes[size])} (first build)", int(events), seconds))

    def _answer(self, answer: Any) -> tuple[Result, analyses.Answer]:
        """``answer`` (a cursor -> rows function) run ``--repeats`` times as the analytics login,
        each on a connection of its own (its block counts land as it closes): the median wall time
        of the query and its fetch, the block counts and the answer of the last run."""
        times: list[float] = []
        rows: analyses.Answer = []
        io = None
        for _ in range(self.args.repeats):
            before = self.io_counts()
            settings = self.stack.settings.database
            with db.connection(settings, application_name="bench", role=db.ANALYTICS_ROLE) as conn, conn, conn.cursor() as cur:
                started = time.perf_counter()
                rows = answer(cur)
                times.append(time.perf_counter() - started)
            io = self.io_counts() - before
        return Result(statistics.median(times), None, f"{len(rows):,} rows", io), rows

    def measure_analyses(self, size: int) -> None:
        """Each analysis from the summaries and from a naive SQL over events_raw (bench.analyses):
        timed, counted, and the answers compared; a row whose answers differ is recorded FAILED."""
        for analysis in analyses.analyses(self.plan.measured_day, self.stack.settings.analytics_funnel_window_s):
            log(f"{analysis.name}: from the summaries, then naive over events_raw")
            try:
                ours, found = self._answer(analysis.summaries)
                naive, expected = self._answer(analysis.naive)
                difference = analyses.first_difference(expected, found)
            except Exception as e:  # one failed analysis must not lose the others
                failed = Result(note=f"FAILED: {str(e).splitlines()[0][:200]}")
                self.record(analysis.key, size, failed)
                self.naive.setdefault(analysis.key, [Result(), Result()])[size] = failed
                continue
            if difference is not None:
                ours = Result(note=f"FAILED: not the naive answer: {difference}", io=ours.io)
            else:
                ours.note += ", the same answer as the naive SQL"
            self.record(analysis.key, size, ours)
            self.naive.setdefault(analysis.key, [Result(), Result()])[size] = naive

    def measure(self, size: int) -> None:
        """Every operation at ``size``; one that fails is recorded as failed, the others still run.
        Retention comes last: it removes the oldest days, which no other measure reads."""
        self.track_io_timing()
        self.build_person_days(size)
        self.build_summaries(size)
        self.stack.settle()
        steps = (
            self.measure_analyses,
            self.measure_batch,
            self.measure_report,
            self.measure_erasure_one,
            self.measure_erasure_many,
            self.measure_finish_vacuum,
            self.measure_status,
            self.measure_retention,
            self.measure_upkeep,
        )
        for step in steps:
            try:
                step(size)
            except Exception as e:  # one failed measure must not lose the others' results
                self.record(step.__name__.removeprefix("measure_"), size, Result(note=f"FAILED: {str(e).splitlines()[0][:200]}"))

    # -- output ---------------------------------------------------------------------------

    def render(self, wall: float) -> str:
        small, large = (size_label(s) for s in self.sizes)
        lines = [
            f"# Benchmark (history: {self.args.days} days, {small} then {large} events, {self.args.users:,} users, "
            f"{self.args.people:,} of them shoppers)",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; embedded stack on the same host; events_raw "
            f"{'partitioned' if self.partitioned else 'not partitioned'}; whole run {wall / 60:.1f} min. "
            f"Reproduce: `{self.command()}`.",
            "",
            f"Each operation does the same work at both sizes (the newest {RECENT_DAYS} days, the days retention removes "
            "and the people erased hold the same events); only the history around it grows. Wall time of the command, "
            f"start-up included; batch job, report and status: median of {self.args.repeats} runs.",
            "",
            f"| operation | at {small} | at {large} | ratio | target | ok | peak RSS at {small} / {large} |",
            "|---|---:|---:|---:|---|---|---:|",
        ]
        for op in self.operations.values():
            times = [("FAILED" if r.seconds is None else f"{r.seconds:.2f} s") for r in op.results]
            peaks = [r.peak_rss_mib for r in op.results]
            rss = "" if peaks == [None, None] else " / ".join("-" if p is None else f"{p:,.0f}" for p in peaks) + " MiB"
            lines.append(
                f"| {op.name} | {times[0]} | {times[1]} | {'' if op.ratio is None else f'{op.ratio:.2f}x'} | "
                f"{f'<= {TARGET_RATIO}x' if op.targeted else 'none'} | {'' if op.passed is None else ('yes' if op.passed else 'NO')} | {rss} |"
            )
        lines += self.render_analyses()
        lines += [
            "",
            *(
                f"- {op.name}: {small}: {describe(op.results[0])}; {large}: {describe(op.results[1])}"
                for op in self.operations.values()
                if any(r.note or r.io for r in op.results)
            ),
        ]
        lines += [
            f"- load {load.what}: {load.seconds:.1f} s, {load.seconds_per_million:.1f} s per million events"
            for load in self.loads
        ]
        return "\n".join(lines) + "\n"

    def command(self) -> str:
        """The command that repeats this run (``make bench SCALE=history`` when every option is its default)."""
        defaults = vars(build_parser().parse_args([]))
        changed = [
            f"--{key.replace('_', '-')} {value}"
            for key, value in vars(self.args).items()
            if key not in {"keep", "load_workers"} and value != defaults[key]
        ]
        if not changed:
            return "make bench SCALE=history"
        return f"python -m bench.run --scale history {' '.join(changed)}"

    def render_analyses(self) -> list[str]:
        """The analyses from the summaries against the naive SQL over events_raw: wall time and
        pages touched at both sizes with their growth from the smaller to the larger, and how many
        times faster the summaries are at each size."""
        if not self.naive:
            return []
        small, large = (size_label(s) for s in self.sizes)
        lines = [
            "",
            f"Analyses from the summaries (per person-day, person-week and person) against a naive SQL over events_raw "
            f"giving the same answer (bench.analyses; compared row by row, a row that differs is FAILED); wall time of the "
            f"query and its fetch, median of {self.args.repeats} runs; pages: shared blocks touched (hit + read) of the "
            f"last run; growth: at {large} over at {small} (target <= {TARGET_RATIO}x for the summaries).",
            "",
            f"| analysis | summaries at {small} / {large} (growth) | pages at {small} / {large} (growth) | "
            f"naive at {small} / {large} (growth) | naive pages at {small} / {large} (growth) | "
            f"naive / summaries at {small} / {large} | target at {large} | ok |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for key, naive in self.naive.items():
            ours = self.operations[key].results
            speedups = [analyses_speedup(o, n) for o, n in zip(ours, naive, strict=True)]
            shown = " / ".join("-" if x is None else f"{x:,.1f}x" for x in speedups)
            lines.append(
                f"| {self.names[key].removesuffix(' (summaries)')} | {pair(r.seconds for r in ours)}{growth(ours, 'seconds')} | "
                f"{pages(ours)}{growth(ours, 'pages')} | {pair(r.seconds for r in naive)}{growth(naive, 'seconds')} | "
                f"{pages(naive)}{growth(naive, 'pages')} | {shown} | >= {NAIVE_TARGET:.0f}x | "
                f"{'' if speedups[1] is None else ('yes' if speedups[1] >= NAIVE_TARGET else 'NO')} |"
            )
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "scale": "history",
            **{k: v for k, v in vars(self.args).items() if k != "keep"},
            "first_day": self.plan.days[0].isoformat(),
            "measured_day": self.plan.measured_day.isoformat(),
            "target_ratio": TARGET_RATIO,
            "loads": [{**asdict(load), "seconds_per_million": load.seconds_per_million} for load in self.loads],
            "rows": [{"operation": op.name, "ratio": op.ratio, "passed": op.passed, "results": [asdict(r) for r in op.results]}
                     for op in self.operations.values()],
            "people": self.args.people,
            "rate_scale": None if self.lives is None else self.lives.scale,
            "naive": {key: {"speedup": analyses_speedup(self.operations[key].results[1], naive[1]),
                            "speedups": [analyses_speedup(o, n) for o, n in zip(self.operations[key].results, naive, strict=True)],
                            "growth": {"seconds": growth_factor(self.operations[key].results, "seconds"),
                                       "pages": growth_factor(self.operations[key].results, "pages"),
                                       "naive_seconds": growth_factor(naive, "seconds"),
                                       "naive_pages": growth_factor(naive, "pages")},
                            "results": [asdict(r) for r in naive]} for key, naive in self.naive.items()},
        }  # fmt: skip


def analyses_speedup(ours: Result, naive: Result) -> float | None:
    """How many times faster the summaries answered than the naive SQL; None when either has no
    time (failed, or a different answer)."""
    if ours.seconds is None or naive.seconds is None or ours.seconds <= 0:
        return None
    return naive.seconds / ours.seconds


def growth_factor(results: Sequence[Result], what: str) -> float | None:
    """The larger size's wall time (``what`` "seconds") or pages touched ("pages") over the
    smaller one's; None where either is missing or the smaller is 0."""
    if what == "seconds":
        small, large = (r.seconds for r in results)
    else:
        small, large = (None if r.io is None else float(r.io.touched) for r in results)
    return flatness(small, large)[0]


def growth(results: Sequence[Result], what: str) -> str:
    """growth_factor as " (1.23x)", or nothing."""
    factor = growth_factor(results, what)
    return "" if factor is None else f" ({factor:.2f}x)"


def pair(seconds: Any) -> str:
    """Two sizes' wall times, "0.12 s / 0.50 s" (FAILED for a missing one)."""
    return " / ".join("FAILED" if s is None else f"{s:.2f} s" for s in seconds)


def pages(results: Sequence[Result]) -> str:
    """Two sizes' pages touched, "1,234 / 5,678" (- where not counted)."""
    return " / ".join("-" if r.io is None else f"{r.io.touched:,}" for r in results)


def describe(result: Result) -> str:
    """A result's note and block counts, for the lines under the table."""
    parts = [result.note] if result.note else []
    if result.io is not None:
        parts.append(result.io.describe())
    return ", ".join(parts) or "-"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-events", type=int, default=10_000_000, help="events at the first size (default 10,000,000)")
    parser.add_argument("--large-events", type=int, default=50_000_000, help="events at the second size (default 50,000,000)")
    parser.add_argument("--days", type=int, default=400, help="days of history, the last yesterday (default 400)")
    parser.add_argument("--users", type=int, default=1_000_000, help="users seeded (default 1,000,000)")
    parser.add_argument(
        "--people",
        type=int,
        default=100_000,
        help="shoppers among the users with consent, the same at both sizes (default 100,000)",
    )
    parser.add_argument("--seed", type=int, default=28, help="seed of the shoppers' lives and sessions (default 28)")
    parser.add_argument("--erasures", type=int, default=10_000, help="people erased at once at each size (default 10,000)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="runs of the read-only commands (default 3)")
    parser.add_argument(
        "--load-workers", type=int, default=os.cpu_count() or 1, help="connections loading days at once (default: one per core)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running and its folder in place")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m bench.history`` (and ``python -m bench.run --scale history``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.small_events < args.large_events:
        parser.error("--large-events must be more than --small-events, and both more than 0")
    if min(args.users, args.erasures, args.repeats, args.load_workers) < 1:
        parser.error("--users, --erasures, --repeats and --load-workers must be at least 1")
    started = time.perf_counter()
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-history-")))
    try:
        bench = HistoryBench(args, stack)
    except ValueError as e:
        parser.error(str(e))
    try:
        stack.start()
        bench.seed_users()
        bench.load_small()
        bench.measure(0)
        bench.load_large()
        bench.measure(1)
        text = bench.render(time.perf_counter() - started)
    except KeyboardInterrupt:
        log("interrupted")
        return
    finally:
        stack.stop(keep=args.keep)
    write_results("history", text, bench.as_json())


if __name__ == "__main__":
    main()
