"""Fixtures for the live dashboard: the real server process on the test's stack, a real HTTP client,
and rows seeded as the owner where a test needs a state no command makes quickly (a request due
tomorrow, a scheduler run).

``python -m dashboard --port 0`` is started on the session's stack; the port it bound is read from
its log, and readiness is polled, never slept for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
