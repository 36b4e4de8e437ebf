"""The dashboard's figures, from a database snapshot and Kafka's end offsets: pure functions, no I/O.

``build`` makes one JSON-ready dict: the body of ``GET /api/summary`` and what the page is rendered
from, so the first render and every refresh show the same fields. Money is an exact decimal
string, times are ISO 8601 in UTC, shares are percentages rounded once here (the page's script
shows them as they come, so it can never round differently).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from analytics import funnels, release
from core import progress
from dashboard.queries import DEAD_LETTER_MINUTES, RATE_WINDOW_S, THROUGHPUT_MINUTES, Snapshot

# Open privacy requests by how close their deadline (Art. 12(3)) is: past it, within 3 days (act
# now), within a week (plan for it: the scheduler's deadline check warns from 7 days), later.
DUE_SOON = timedelta(days=3)
DUE_THIS_WEEK = timedelta(days=7)
BUCKETS = ("overdue", "due_within_3_days", "due_within_7_days", "later")
BUCKET_LABELS = {
    "overdue": "Overdue",
    "due_within_3_days": "Due within 3 days",
    "due_within_7_days": "Due within 7 days",
    "later": "Due later",
}
# Today's ordered funnel of people, step by step (analytics.funnels): a step's share is of the
# people at the step before it, its time the median from the step before.
FUNNEL = funnels.STEPS
FUNNEL_LABELS = {"page_view": "Viewed a page", "add_to_cart": "Then added to cart", "purchase": "Then purchased"}
_RATE = {"add_to_cart": "rate_view_to_cart", "purchase": "rate_cart_to_purchase"}
_MEDIAN = {"add_to_cart": "median_view_to_cart_s", "purchase": "median_cart_to_purchase_s"}
CENT = Decimal("0.01")


def deadline_bucket(due_at: datetime, now: datetime) -> str:
    """Which of BUCKETS a request due at ``due_at`` falls in at ``now``: overdue once its due time
    has passed (as the scheduler's deadline check and the console count it)."""
    left = due_at - now
    if left < timedelta(0):
        return "overdue"
    if left < DUE_SOON:
        return "due_within_3_days"
    if left < DUE_THIS_WEEK:
        return "due_within_7_days"
    return "later"


def deadlines(requests: Iterable[tuple[str, datetime]], now: datetime) -> list[dict[str, Any]]:
    """Open requests (type, due date) counted per bucket, every bucket listed, with each bucket's
    count per request type."""
    counts: dict[str, Counter[str]] = {bucket: Counter() for bucket in BUCKETS}
    for kind, due_at in requests:
        counts[deadline_bucket(due_at, now)][kind] += 1
    return [
        {
            "bucket": bucket,
            "label": BUCKET_LABELS[bucket],
            "count": sum(counts[bucket].values()),
            "by_type": dict(sorted(counts[bucket].items())),
            # What the page shows in red: a request past its deadline.
            "alert": bucket == "overdue" and bool(counts[bucket]),
        }
        for bucket in BUCKETS
    ]


def share(part: int, whole: int | None) -> float | None:
    """``part`` as a percentage of ``whole``, one decimal; None when there is no whole."""
    if not whole:
        return None
    return round(100 * part / whole, 1)


def funnel(people: funnels.Funnel, k: int) -> list[dict[str, Any]]:
    """Today's ordered funnel of people as the k-rule releases it (analytics.funnels.publishable):
    each step's people (the suppression marker where fewer than ``k``), its share of the step
    before and the median seconds from it (None where there is no base or it is suppressed), and
    the width of its bar relative to the largest step shown."""
    published = funnels.publishable(people, k)
    row: dict[str, Any] = published["rows"][0] if published["rows"] else {"people": dict.fromkeys(FUNNEL, 0)}
    counts: dict[str, int | str] = row["people"]
    largest = max((n for n in counts.values() if isinstance(n, int)), default=0)
    steps: list[dict[str, Any]] = []
    for step in FUNNEL:
        count = counts[step]
        rate, median = row.get(_RATE.get(step, "")), row.get(_MEDIAN.get(step, ""))
        steps.append(
            {
                "step": step,
                "label": FUNNEL_LABELS[step],
                "people": count,
                "of_previous_pct": round(100 * rate, 1) if isinstance(rate, float) else None,
                "median_from_previous_s": round(median, 1) if isinstance(median, float) else None,
                "bar_pct": (share(count, largest) or 0.0) if isinstance(count, int) else 0.0,
            }
        )
    return steps


def iso(moment: datetime | None) -> str | None:
    """An ISO 8601 time in UTC to the second, as the JSON carries every time."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _freshness(found: progress.Freshness | None) -> dict[str, float] | None:
    if found is None:
        return None
    return {
        "last_best_s": round(found.last_best, 2),
        "last_worst_s": round(found.last_worst, 2),
        "window_worst_s": round(found.window_worst, 2),
    }


def group(status: progress.GroupStatus, per_minute: list[int] | None) -> dict[str, Any]:
    """One consumer group: instances, rate, throughput per minute, lag (None: unknown), freshness."""
    return {
        "group": status.group,
        "instances": status.instances,
        "events_per_s": round(status.events_per_s, 1),
        "per_minute": per_minute or [0] * THROUGHPUT_MINUTES,
        "lag": status.total_lag,
        "lag_by_partition": None if status.lag is None else {str(p): n for p, n in status.lag.items()},
        "freshness": _freshness(status.freshness),
        "last_commit": iso(status.last_commit),
        "broker_lost_since": iso(status.broker_lost_since),
    }


def build(
    snapshot: Snapshot,
    ends: Mapping[int, int] | None,
    topic: str,
    refresh_s: int,
    *,
    min_cell_users: int = release.DEFAULT_MIN_CELL_USERS,
) -> dict[str, Any]:
    """The summary: today's figures, the pipeline, privacy deadlines, scheduler runs, dead letters.
    ``ends`` is Kafka's end offset per partition, None when Kafka did not answer (lag unknown); a
    count of fewer than ``min_cell_users`` people is suppressed (REPORT_MIN_CELL_USERS)."""
    events = {kind: count for kind, (count, _amount) in snapshot.metrics.items()}
    revenue = sum((amount for _count, amount in snapshot.metrics.values()), Decimal(0)).quantize(CENT)
    statuses = progress.statuses(snapshot.groups, ends, RATE_WINDOW_S)
    buckets = deadlines(snapshot.open_requests, snapshot.now)
    return {
        "as_of": iso(snapshot.now),
        "refresh_s": refresh_s,
        "today": {
            "day": snapshot.day.isoformat(),
            "events": sum(events.values()),
            "revenue": str(revenue),
            "purchases": events.get("purchase", 0),
            "by_type": dict(sorted(events.items())),
            "funnel": funnel(snapshot.people_funnel, min_cell_users),
            "funnel_window_s": snapshot.people_funnel.window_s,
            "min_cell_users": min_cell_users,
        },
        "pipeline": {
            "topic": topic,
            "kafka_reachable": ends is not None,
            "minutes": THROUGHPUT_MINUTES,
            "groups": [group(s, snapshot.per_minute.get(s.group)) for s in statuses],
        },
        "privacy_requests": {
            "open": len(snapshot.open_requests),
            "overdue": next(b["count"] for b in buckets if b["bucket"] == "overdue"),
            "deadlines": buckets,
        },
        "scheduler": [
            {"job": run.job, "scheduled_for": iso(run.scheduled_for), "finished_at": iso(run.finished_at), "outcome": run.outcome}
            for run in snapshot.runs
        ],
        "dead_letters": {
            "minutes": DEAD_LETTER_MINUTES,
            "total": sum(n for _reason, n in snapshot.dead_letters),
            "by_reason": [{"reason": reason, "count": n} for reason, n in snapshot.dead_letters],
        },
    }
