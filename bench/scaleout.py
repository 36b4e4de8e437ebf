"""``make bench SCALE=scaleout``: each consumer's events/s with k = 1, 2, 4, ... instances in one
group, up to the topic's partition count, over the same events, as a Markdown table in
``bench/results/bench-scaleout.md`` (and ``.json``).

An isolated embedded stack is started in a temporary folder, users are seeded (90 % consenting,
the consumers run with ``CONSENT_MODE=required`` as in ``make bench``) and the events are produced
once to a topic of ``--partitions`` partitions. Then, for each consumer and each k, k processes
share a fresh consumer group (Kafka's group protocol splits the partitions between them) until
the group has stored the whole topic. The rate is the one ``make bench`` reports for one
instance, taken over the whole group's commit log (consumer_batches): its events from the end of
each instance's first batch to the group's last commit. Before each run the tables the
consumers write are emptied, so every k stores the events afresh: ``events_raw`` ignores an
``event_id`` it already holds, and a second run over the same events would measure only that
path. After each run the group must have handled every event exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from bench.harness import Sampler, Stack, log, machine, python_module, run_measured, seed_users, write_results
from core import db, kafka, progress
from core.config import PROJECT_ROOT

TOPIC = "bench_scaleout"
CONSUMERS = {"raw": "consumers.store_raw_events", "streaming": "consumers.streaming_metrics"}
# What each consumer keeps of a valid event it does not drop for lack of consent.
KEPT_SQL = {
    "raw": "SELECT count(*) FROM events_raw",
    "streaming": "SELECT coalesce(sum(total_events), 0) FROM metrics_streaming_daily",
}
# The tables the consumers write, emptied before every run (the bench owns its stack).
RESET_SQL = "TRUNCATE events_raw, dead_letter_events, metrics_streaming_daily"
DEFAULT_EVENTS = 1_000_000
DEFAULT_USERS = 1_000_000  # as make bench: the consent ledger every instance loads is this size
# A group whose stored offsets have not moved for this long has stalled (a consumer's start-up,
# the consent ledger of a million users included, takes a few seconds).
STALL_S = 120
PROGRESS_EVERY_S = 10


@dataclass
class Run:
    """One line of the table: a consumer with k instances in one group."""

    consumer: str
    instances: int
    events_per_s: float | None
    speedup: float | None  # events/s against the same consumer's k = 1 run
    peak_rss_mib: float | None  # of the largest instance
    kept: int | None = None  # events stored (raw) or counted (streaming), to compare across runs
    problems: list[str] = field(default_factory=list)  # empty: every event handled exactly once

    @property
    def per_instance(self) -> float | None:
        return None if self.events_per_s is None else self.events_per_s / self.instances


def instance_counts(partitions: int) -> list[int]:
    """1, 2, 4, ... below ``partitions``, then ``partitions`` itself: more instances than
    partitions would wait idle."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    counts = []
    k = 1
    while k < partitions:
        counts.append(k)
        k *= 2
    return [*counts, partitions]


def steady_rate(batches: Sequence[tuple[datetime, int]], instances: int) -> float | None:
    """Events/s of a group from its commit log, ``(committed_at, events)`` per batch, start-up
    left out as ``make bench`` does for one instance: the clock starts when the group has
    committed as many batches as it has instances (each instance's first, when they start
    together) and the events of those batches are not counted. None when nothing is left."""
    ordered = sorted(batches)
    if len(ordered) <= instances:
        return None
    start, last = ordered[instances - 1][0], ordered[-1][0]
    seconds = (last - start).total_seconds()
    return sum(events for _at, events in ordered[instances:]) / seconds if seconds > 0 else None


@dataclass(frozen=True)
class Tally:
    """What PostgreSQL recorded of one group's run."""

    offsets: int  # sum of its stored next offsets
    handled: int  # valid events in its batch log (stored, or dropped for lack of consent)
    dead_letters: int  # invalid events in its batch log
    dead_letter_rows: int  # its rows in dead_letter_events
    dropped: int  # its count in consent_dropped_daily
    kept: int  # events stored (raw) or counted (streaming)


def exactly_once_problems(total: int, tally: Tally, kept_as: str) -> list[str]:
    """What a group's run over a topic of ``total`` events did wrong, if anything."""
    t = tally
    problems = []
    if t.offsets != total:
        problems.append(f"stored offsets cover {t.offsets:,} of the topic's {total:,} events")
    if t.handled + t.dead_letters != total:
        problems.append(f"its batches handled {t.handled + t.dead_letters:,} events, the topic holds {total:,}")
    if t.dead_letter_rows != t.dead_letters:
        problems.append(f"{t.dead_letter_rows:,} dead letters stored, {t.dead_letters:,} recorded by its batches")
    if t.kept + t.dropped != t.handled:
        problems.append(f"{t.kept:,} {kept_as} + {t.dropped:,} dropped for lack of consent, {t.handled:,} valid events handled")
    return problems


def flag_disagreements(runs: Sequence[Run]) -> None:
    """Every run read the same events with the same consents: each must keep as many as the first."""
    reference = next((r for r in runs if r.kept is not None), None)
    if reference is None:
        return
    for run in runs:
        if run.kept is not None and run.kept != reference.kept:
            run.problems.append(f"kept {run.kept:,} events, {reference.consumer} k={reference.instances} kept {reference.kept:,}")


def table(runs: Sequence[Run]) -> list[str]:
    """The results as Markdown table lines."""

    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f}"

    lines = [
        "| consumer | k | events/s | speed-up vs k=1 | per-instance events/s | peak RSS per instance | exactly once |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.consumer} | {r.instances} | {rate(r.events_per_s)} | {'n/a' if r.speedup is None else f'{r.speedup:.2f}x'} | "
            f"{rate(r.per_instance)} | {'' if r.peak_rss_mib is None else f'{r.peak_rss_mib:,.0f} MiB'} | "
            f"{'NO: ' + '; '.join(r.problems) if r.problems else 'yes'} |"
        )
    return lines


class ScaleOut:
    """The stage: one topic, its events produced once, then each consumer at each k."""

    def __init__(self, stack: Stack, partitions: int) -> None:
        self.stack = stack
        self.partitions = partitions
        self.env = {**stack.env, "EVENTS_TOPIC": TOPIC, "LOG_LEVEL": "INFO"}  # INFO: assignments in the logs
        self.logs = stack.data_dir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.total = 0  # events in the topic, once produced

    def produce(self, events: int) -> str:
        """Produce the events every run reads (as fast as possible, one generator process per
        core); return a note saying how fast."""
        processes = os.cpu_count() or 1
        log(f"producing {events:,} events to {TOPIC} ({self.partitions} partitions), {processes} generator processes")
        kafka.ensure_topic(self.stack.settings.kafka, TOPIC, self.partitions)
        command = python_module("data_generators.generate_events", "--rate", "0", "--count", str(events), "--seed", "1")
        seconds, _out, _p, _g = run_measured([*command, "--processes", str(processes)], self.env)
        self.total = sum(kafka.end_offsets(self.stack.settings.kafka, TOPIC).values())
        if self.total != events:
            raise RuntimeError(f"{TOPIC} holds {self.total:,} events, {events:,} were produced")
        return f"{events:,} events produced in {seconds:.1f} s by {processes} generator processes"

    def reset(self) -> None:
        """Empty what the consumers write, then let those writes land (Stack.settle): each run
        starts from the same database state, not in the writeback of the run before."""
        self.stack.query(RESET_SQL)
        self.stack.settle()

    def run(self, consumer: str, k: int) -> Run:
        """k instances of ``consumer`` in a fresh group until it has stored the whole topic."""
        group = f"scaleout-{consumer}-k{k}"
        self.reset()
        log(f"{consumer}: {k} instance(s) in group {group}")
        processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        samplers: list[Sampler] = []
        with contextlib.ExitStack() as stack:
            stack.callback(lambda: stop([p for p, _path in processes]))  # runs last: the instances stop together
            for i in range(k):
                path = self.logs / f"{group}-{i}.log"
                output: IO[bytes] = stack.enter_context(path.open("wb"))
                process = subprocess.Popen(
                    python_module(CONSUMERS[consumer], "--group", group),
                    cwd=PROJECT_ROOT,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=output,
                )
                processes.append((process, path))
                samplers.append(Sampler(process.pid))
            self.wait_stored(group, processes)
        peaks = [peak for peak, _growth in (s.stop() for s in samplers) if peak is not None]
        batches = self.stack.query("SELECT committed_at, events FROM consumer_batches WHERE consumer_group = %s", (group,))
        rate = steady_rate([(at, int(events)) for at, events in batches], k)
        result = Run(consumer, k, rate, None, max(peaks, default=None))
        result.kept, result.problems = self.check(consumer, group)
        log(f"{consumer} k={k}: {'n/a' if rate is None else f'{rate:,.0f}'} events/s")
        return result

    def wait_stored(self, group: str, processes: Sequence[tuple[subprocess.Popen[bytes], Path]]) -> None:
        """Until the group's stored offsets cover the topic; an error when an instance exits or
        the offsets stop moving."""
        done, moved = 0, time.monotonic()
        next_progress = moved + PROGRESS_EVERY_S
        with db.connection(self.stack.settings.database, application_name="bench") as conn:
            while done < self.total:
                time.sleep(0.2)
                for process, path in processes:
                    if process.poll() is not None:
                        tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
                        raise RuntimeError(f"an instance of {group} exited with {process.returncode}: {' / '.join(tail)}")
                with conn, conn.cursor() as cur:
                    now_done = progress.total_stored(cur, group)
                now = time.monotonic()
                if now_done > done:
                    done, moved = now_done, now
                elif now - moved > STALL_S:
                    raise RuntimeError(
                        f"{group} stopped at {done:,} of {self.total:,} events for {STALL_S} s (logs: {self.logs})"
                    )
                if now >= next_progress:
                    log(f"{group}: {done:,} of {self.total:,} events")
                    next_progress = now + PROGRESS_EVERY_S

    def check(self, consumer: str, group: str) -> tuple[int, list[str]]:
        """What the group kept, and what it did not handle exactly once."""
        by_group = (group,)
        with db.connection(self.stack.settings.database, application_name="bench") as conn, conn, conn.cursor() as cur:
            tally = Tally(
                offsets=progress.total_stored(cur, group),
                handled=scalar(cur, "SELECT coalesce(sum(events), 0) FROM consumer_batches WHERE consumer_group = %s", by_group),
                dead_letters=scalar(
                    cur, "SELECT coalesce(sum(dead_letters), 0) FROM consumer_batches WHERE consumer_group = %s", by_group
                ),
                dead_letter_rows=scalar(cur, "SELECT count(*) FROM dead_letter_events WHERE consumer_group = %s", by_group),
                dropped=scalar(
                    cur, "SELECT coalesce(sum(dropped_events), 0) FROM consent_dropped_daily WHERE consumer_group = %s", by_group
                ),
                kept=scalar(cur, KEPT_SQL[consumer]),
            )
        kept_as = "stored in events_raw" if consumer == "raw" else "counted in metrics_streaming_daily"
        return tally.kept, exactly_once_problems(self.total, tally, kept_as)


def scalar(cur: db.Cursor, sql: str, params: tuple[str, ...] = ()) -> int:
    """The one number a query answers."""
    cur.execute(sql, params)
    return int((cur.fetchone() or (0,))[0])


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every instance (each commits what it holds and exits), then SIGKILL to any that
    hangs."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def report(runs: Sequence[Run], args: argparse.Namespace, notes: Sequence[str], wall: float) -> str:
    lines = [
        f"# Scale-out ({args.partitions} partitions, {args.events:,} events, {args.users:,} users)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; embedded stack (Tansu + PostgreSQL) and every instance "
        f"on the same host; whole run {wall / 60:.1f} min. Reproduce: `python -m bench.scaleout --partitions "
        f"{args.partitions} --events {args.events} --users {args.users}` (`make bench SCALE=scaleout` for the defaults).",
        "",
        "k instances of a consumer share one fresh group over the same events; events/s counts every valid event "
        "handled (stored, or dropped for lack of consent) from the end of the group's k-th batch (each instance's first) "
        "to its last commit.",
        "",
        *table(runs),
    ]
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def measure_all(stack: Stack, args: argparse.Namespace, runs: list[Run], notes: list[str]) -> None:
    stack.start()
    notes.append(f"users seeded: {seed_users(stack, args.users).measured}")
    stage = ScaleOut(stack, args.partitions)
    notes.append(stage.produce(args.events))
    for consumer in CONSUMERS:
        base = None
        for k in instance_counts(args.partitions):
            try:
                run = stage.run(consumer, k)
            except Exception as e:  # one failed run must not lose the others' results
                log(f"{consumer} k={k} failed: {e}")
                run = Run(consumer, k, None, None, None, problems=[f"FAILED: {str(e).splitlines()[0][:200]}"])
            base = run.events_per_s if k == 1 else base
            run.speedup = run.events_per_s / base if run.events_per_s and base else None
            runs.append(run)
    flag_disagreements(runs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--partitions",
        type=positive,
        default=max(2, os.cpu_count() or 1),
        help="partitions of the topic, and the largest k (default: one per core, at least 2)",
    )
    parser.add_argument("--events", type=positive, default=DEFAULT_EVENTS, help=f"events produced (default: {DEFAULT_EVENTS:,})")
    parser.add_argument("--users", type=positive, default=DEFAULT_USERS, help=f"users seeded (default: {DEFAULT_USERS:,})")
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack running and its folder (and the consumers' logs) in place"
    )
    return parser


def positive(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    stack = Stack(Path(tempfile.mkdtemp(prefix="bench-scaleout-")))
    runs: list[Run] = []
    notes: list[str] = []
    try:
        measure_all(stack, args, runs, notes)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        stack.stop(keep=args.keep)  # kept: the consumers' logs are in its folder too
    write_results(
        "scaleout",
        report(runs, args, notes, time.perf_counter() - started),
        {
            "scale": "scaleout",
            "partitions": args.partitions,
            "events": args.events,
            "users": args.users,
            "runs": [{**asdict(r), "per_instance_events_per_s": r.per_instance} for r in runs],
            "notes": notes,
        },
    )


if __name__ == "__main__":
    main()
