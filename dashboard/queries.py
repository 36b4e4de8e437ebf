"""What the dashboard reads, in one read-only transaction as the dashboard_reader login (sql/024).

Every statement reads counts and progress: the consumers' offsets, batches and heartbeats (through
core.progress, their one owner), today's streaming metrics, today's ordered funnel of people (counts
and medians from the owner's function, analytics.funnels.open_day), the type and due date of each
open privacy request, the latest run of each scheduled job and the last hour's dead letters by
reason. The login cannot read anything else, personal data above all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from analytics import funnels
from core import db, progress
from gdpr import requests

# consumers.status's window: events/s and freshness over the last minute.
RATE_WINDOW_S = 60
# The throughput chart's width: the last ten minutes, one bar a minute.
THROUGHPUT_MINUTES = 10
# Dead letters are counted over the last hour (a burst from a bad producer shows at once).
DEAD_LETTER_MINUTES = 60


@dataclass(frozen=True)
class JobRun:
    """The latest run of a scheduled job."""

    job: str
    scheduled_for: datetime
    finished_at: datetime | None
    outcome: str


@dataclass(frozen=True)
class Snapshot:
    """What the database holds right now, read in one transaction."""

    now: datetime  # the database's clock
    day: date  # today, UTC
    metrics: dict[str, tuple[int, Decimal]]  # today's streaming metrics: event type -> (events, amount)
    people_funnel: funnels.Funnel  # today's ordered funnel of people, every country together
    groups: dict[str, progress.GroupProgress]
    per_minute: dict[str, list[int]]  # events each group handled per minute, oldest first
    open_requests: list[tuple[str, datetime]]  # (request type, due date) of every open request
    runs: list[JobRun]
    dead_letters: list[tuple[str, int]]  # (reason, count) over the last DEAD_LETTER_MINUTES, most first
    funnel_cost_s: float | None = None  # seconds the funnel took to read now; None: the cached one


def read(cur: db.Cursor, topic: str, funnel_window_s: int, people_funnel: funnels.Funnel | None = None) -> Snapshot:
    """Everything the page shows, from one snapshot of the database; the ordered funnel with the
    conversion window ``funnel_window_s`` (ANALYTICS_FUNNEL_WINDOW_S, as the summaries use), unless
    ``people_funnel`` gives today's funnel already (the service's FunnelCache): then
    ``funnel_cost_s`` is None, else how long reading it took."""
    # One snapshot for every statement, so the figures agree with each other; nothing is written.
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    # The connection's time zone is UTC (core.db.connect): current_date is today's UTC day.
    cur.execute("SELECT now(), current_date")
    [(now, day)] = cur.fetchall()
    cur.execute("SELECT event_type, total_events, total_amount FROM metrics_streaming_daily WHERE event_date = current_date")
    metrics = {str(kind): (int(events), Decimal(amount)) for kind, events, amount in cur.fetchall()}
    funnel_cost_s = None
    if people_funnel is None or people_funnel.first != day:
        started = time.monotonic()
        people_funnel = funnels.open_day(cur, window_s=funnel_window_s)
        funnel_cost_s = time.monotonic() - started
    groups = progress.overview(cur, topic, RATE_WINDOW_S, count_dead_letters=False)
    per_minute = progress.events_per_minute(cur, topic, THROUGHPUT_MINUTES)
    open_requests = requests.open_deadlines(cur)  # open on hold too: the deadline still runs
    return Snapshot(
        now=now,
        day=day,
        metrics=metrics,
        people_funnel=people_funnel,
        funnel_cost_s=funnel_cost_s,
        groups=groups,
        per_minute=per_minute,
        open_requests=open_requests,
        runs=latest_runs(cur),
        dead_letters=dead_letters(cur, DEAD_LETTER_MINUTES),
    )


def latest_runs(cur: db.Cursor) -> list[JobRun]:
    """Each job's run for its latest due time, by job name: the attempt still running or the one
    that ended last; a run skipped because another held that due time only when nothing else did."""
    cur.execute(
        "SELECT DISTINCT ON (job) job, scheduled_for, finished_at, outcome FROM scheduler_runs"
        " ORDER BY job, scheduled_for DESC, outcome = 'skipped', finished_at DESC NULLS FIRST"
    )
    return [JobRun(str(job), due, finished, str(outcome)) for job, due, finished, outcome in cur.fetchall()]


def dead_letters(cur: db.Cursor, minutes: int) -> list[tuple[str, int]]:
    """Dead letters received in the last ``minutes``, counted by reason, the most frequent first."""
    cur.execute(
        "SELECT reason, count(*) FROM dead_letter_events WHERE received_at > now() - make_interval(mins => %s)"
        " GROUP BY reason ORDER BY count(*) DESC, reason",
        (minutes,),
    )
    return [(str(reason), int(n)) for reason, n in cur.fetchall()]
