"""The GDPR processor's metrics on the real database: the deadline counts as its own login reads
them, and ``--watch --metrics-port`` serving what it answered and what is open (counts only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import devstack
from core import db
from core.config import Settings
from gdpr import metrics
from tests.helpers import PROJECT_ROOT, query, wait_until

pytestmark = pytest.mark.integration


def file_request(settings: Settings, email: str, status: str, due_in: timedelta) -> None:
    """A request in ``status`` whose deadline is ``due_in`` from now (negative: past), as the owner."""
    [(request_id,)] = query(
        settings, "INSERT INTO privacy_requests (email, status) VALUES (%s, %s) RETURNING id", (email, status)
    )
    query(settings, "UPDATE privacy_requests SET due_at = now() + %s WHERE id = %s", (due_in, request_id))


def test_deadlines_count_open_requests_by_status_and_horizon(settings: Settings) -> None:
    file_request(settings, "a@example.invalid", "pending", timedelta(days=1))
    file_request(settings, "b@example.invalid", "on_hold", timedelta(days=-2))
    file_request(settings, "c@example.invalid", "on_hold", timedelta(days=5))
    file_request(settings, "d@example.invalid", "unverified", timedelta(days=20))
    file_request(settings, "e@example.invalid", "completed", timedelta(days=-40))  # answered: counts nowhere

    with db.connection(settings.database, role=db.GDPR_ROLE) as conn, conn, conn.cursor() as cur:
        deadlines = metrics.read_deadlines(cur)

    assert deadlines.open_by_status == {"unverified": 1, "pending": 1, "on_hold": 2}
    assert deadlines.overdue == 1
    assert deadlines.due_within == {3: 1, 7: 2}


def sample(text: str, name: str) -> float | None:
    """The value of the exposition line that starts with ``name`` (labels included), if any."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_watch_serves_what_it_answered_and_what_is_open(settings: Settings, tmp_path: Path) -> None:
    port = devstack.free_port()
    log = tmp_path / "watch.log"
    with open(log, "w", encoding="utf-8") as handle:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "gdpr.process_privacy_requests", "--watch", "--metrics-port", str(port)],
            cwd=PROJECT_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOG_LEVEL": "INFO"},
        )
    try:
        wait_until(lambda: "watching privacy_requests" in log.read_text(), what="the watcher to listen")
        query(settings, "INSERT INTO privacy_requests (email) VALUES ('nobody.metrics@example.invalid')")
        exposed: list[str] = []

        def served() -> bool:
            exposed.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
            text = exposed[-1]
            return (
                sample(text, 'platform_privacy_requests_processed_total{outcome="not_found",type="erasure"}') == 1
                and sample(text, 'platform_privacy_requests_open{status="pending"}') == 0
                and sample(text, "platform_privacy_requests_overdue") == 0
            )

        wait_until(served, timeout=30, what="the processor's metrics")
        assert "nobody.metrics" not in exposed[-1]
        assert sample(exposed[-1], 'platform_privacy_requests_due_within_days{days="3"}') == 0
    finally:
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=15) == 0, log.read_text()


def test_a_single_run_refuses_a_metrics_port(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gdpr.process_privacy_requests", "--metrics-port", "9999"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--metrics-port applies to --watch" in result.stderr
