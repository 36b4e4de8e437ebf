"""Fixtures for the live dashboard: the real server process on the test's stack, a real HTTP client,
and rows seeded as the owner where a test needs a state no command makes quickly (a request due
tomorrow, a scheduler run).

``python -m dashboard --port 0`` is started on the session's stack; the port it bound is read from
its log, and readiness is polled, never slept for.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics import funnels
from core.config import Settings
from tests.helpers import HttpService, query, start_http_service


@dataclass
class Dashboard(HttpService):
    """A running ``python -m dashboard`` and an HTTP client pointed at it."""

    def summary(self) -> dict[str, Any]:
        answer = self.http.get("/api/summary")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def start_dashboard(log_dir: Path, *args: str, env: dict[str, str] | None = None) -> Dashboard:
    """Start the dashboard on a free port (its default host); return once /healthz answers 200."""
    return Dashboard(*start_http_service("dashboard", "dashboard", log_dir, args=args, env=env))


@pytest.fixture
def dashboard(settings: Settings, tmp_path: Path) -> Iterator[Dashboard]:
    """The dashboard on the test's stack (the test's own topic); it must stop cleanly (exit 0) on
    SIGTERM, and never have met a defect."""
    running = start_dashboard(tmp_path)
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output()
    assert "unforeseen" not in running.output(), running.output()


def file_request(settings: Settings, kind: str, due_in: str, email: str = "jane.doe@example.com") -> int:
    """An open request, as an operator files it, due ``due_in`` from now (a PostgreSQL interval,
    '-2 days' for an overdue one); the due date is set after the insert, whose trigger computes it."""
    [(request_id,)] = query(
        settings, "INSERT INTO privacy_requests (email, request_type) VALUES (%s, %s) RETURNING id", (email, kind)
    )
    query(settings, "UPDATE privacy_requests SET due_at = now() + %s::interval WHERE id = %s", (due_in, request_id))
    return int(request_id)


def record_run(settings: Settings, job: str, outcome: str, *, error: str | None = None) -> None:
    """A finished run of ``job`` in scheduler_runs, as the scheduler records one."""
    query(
        settings,
        "INSERT INTO scheduler_runs (job, scheduled_for, started_at, finished_at, outcome, error)"
        " VALUES (%s, date_trunc('hour', now()), now() - interval '3 seconds', now(), %s, %s)",
        (job, outcome, error),
    )


def naive_people_funnel(events: Iterable[tuple[str, str, datetime]], day: date, window_s: int) -> funnels.Funnel:
    """The ordered funnel of ``day``'s (user_id, event_type, time) events counted naively in Python:
    for every page view, every cart at or after it within the window and every purchase at or after
    that cart still within the window from the view; a person's furthest step, and for the medians
    the sequence completed first, then the latest view (docs/analytics.md)."""
    window = timedelta(seconds=window_s)
    by_person: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for user, kind, at in events:
        by_person[user].append((kind, at))
    best: dict[str, tuple[int, float | None, float | None]] = {}
    for user, mine in by_person.items():
        candidates = []
        for kind, viewed in mine:
            if kind != "page_view":
                continue
            carts = sorted(at for k, at in mine if k == "add_to_cart" and viewed <= at <= viewed + window)
            carted = carts[0] if carts else None
            bought = None
            if carted is not None:
                buys = sorted(at for k, at in mine if k == "purchase" and carted <= at <= viewed + window)
                bought = buys[0] if buys else None
            step = 3 if bought else 2 if carted else 1
            candidates.append((-step, bought or carted or viewed, -viewed.timestamp(), viewed, carted, bought))
        if candidates:
            step, _done, _late, viewed, carted, bought = min(candidates)
            to_cart = None if carted is None else (carted - viewed).total_seconds()
            to_buy = None if bought is None or carted is None else (bought - carted).total_seconds()
            best[user] = (-step, to_cart, to_buy)
    steps = [s for s, _a, _b in best.values()]
    v2c = [a for s, a, _b in best.values() if s >= 2 and a is not None]
    c2b = [b for s, _a, b in best.values() if s >= 3 and b is not None]
    rows = []
    if steps:
        rows = [
            funnels.FunnelRow(
                day,
                None,
                sum(s >= 1 for s in steps),
                sum(s >= 2 for s in steps),
                sum(s >= 3 for s in steps),
                statistics.median(v2c) if v2c else None,
                statistics.median(c2b) if c2b else None,
            )
        ]
    return funnels.Funnel(window_s, day, day, rows, [])
