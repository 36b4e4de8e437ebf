"""The GDPR processor's Prometheus metrics: requests answered, and the open requests' deadlines.

Counts only: a request's type and outcome, how many requests are open per status, how many are
due within 3 and 7 days, how many are overdue (Art. 12(3): one month, extended at most by two).
Never an address, an id or anything else of a person. ``--watch`` refreshes the deadline gauges
with one small query every DEADLINES_EVERY_S (``refresh_deadlines``).
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from core.db import Cursor
from gdpr import requests
from gdpr.requests import OPEN_STATUSES

# Prometheus scrapes every 15 s; deadlines move by the day, so this is about the query's cost.
DEADLINES_EVERY_S = 15.0
# The horizons of the "due soon" gauge: the alert warns 3 days ahead, the dashboard shows 7.
DUE_WITHIN_DAYS = (3, 7)

PROCESSED = Counter(
    "platform_privacy_requests_processed",
    "Privacy requests answered by the processor, by type and outcome (completed, not_found, rejected, on_hold).",
    ["type", "outcome"],
)
OPEN = Gauge("platform_privacy_requests_open", "Open privacy requests, by status (unverified, pending, on_hold).", ["status"])
DUE_WITHIN = Gauge(
    "platform_privacy_requests_due_within_days",
    "Open privacy requests not yet overdue whose deadline falls within the next N days.",
    ["days"],
)
OVERDUE = Gauge("platform_privacy_requests_overdue", "Open privacy requests past their deadline (on hold or not).")


def count_processed(answered: Tally[tuple[str, str]]) -> None:
    """Add one committed batch's answers, by (type, outcome)."""
    for (request_type, outcome), n in answered.items():
        PROCESSED.labels(request_type, outcome).inc(n)


@dataclass(frozen=True)
class Deadlines:
    """The open requests' counts the gauges show."""

    open_by_status: dict[str, int]
    due_within: dict[int, int]
    overdue: int


def read_deadlines(cur: Cursor) -> Deadlines:
    """Count the open requests by status, those due within each horizon and the overdue ones."""
    by_status: dict[str, int] = dict.fromkeys(OPEN_STATUSES, 0)
    due = dict.fromkeys(DUE_WITHIN_DAYS, 0)
    overdue = 0
    for status, total, late, *soon in requests.deadline_counts(cur, DUE_WITHIN_DAYS):
        by_status[status] = total
        overdue += late
        for days, n in zip(DUE_WITHIN_DAYS, soon, strict=True):
            due[days] += n
    return Deadlines(by_status, due, overdue)


def publish_deadlines(deadlines: Deadlines) -> None:
    for status, n in deadlines.open_by_status.items():
        OPEN.labels(status).set(n)
    for days, n in deadlines.due_within.items():
        DUE_WITHIN.labels(str(days)).set(n)
    OVERDUE.set(deadlines.overdue)


def refresh_deadlines(cur: Cursor) -> None:
    """Read the deadlines and set the gauges."""
    publish_deadlines(read_deadlines(cur))
