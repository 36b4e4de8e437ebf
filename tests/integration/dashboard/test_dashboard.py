"""The live dashboard as a real service on the real stack: what /api/summary says after the real
consumers stored known events and dead-lettered a bad one, with a request overdue and one due
tomorrow and a scheduler run recorded; Kafka down; hostile requests; its command line."""

from __future__ import annotations

import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from core.cli import today_utc
from core.config import Settings
from tests.helpers import consume_all, known_events, produce, produce_events, run_command
from tests.integration.dashboard.conftest import Dashboard, file_request, record_run, start_dashboard

pytestmark = pytest.mark.integration


def test_the_summary_shows_todays_funnel_the_pipeline_deadlines_runs_and_dead_letters(
    settings: Settings, group: str, dashboard: Dashboard, tmp_path: Path
) -> None:
    events = known_events(300, seed=16, days=[today_utc()])
    produce_events(settings, events)
    produce(settings, [(None, b"not json at all")])
    consume_all(settings, group, tmp_path)
    file_request(settings, "erasure", "-2 days")
    file_request(settings, "access", "1 day", email="ana.silva@example.pt")
    file_request(settings, "objection", "20 days", email="m.rossi@example.it")
    record_run(settings, "batch", "ok")
    record_run(settings, "retention", "failed", error="gdpr.retention exited with status 2: error: ...")

    summary = dashboard.summary()

    kinds = Counter(e.event_type for e in events)
    revenue = sum((e.amount or Decimal(0) for e in events), Decimal(0))
    today = summary["today"]
    assert today["day"] == today_utc().isoformat()
    assert today["by_type"] == dict(sorted(kinds.items())) and today["events"] == 300
    assert Decimal(today["revenue"]) == revenue and today["purchases"] == kinds["purchase"]
    steps = ("page_view", "add_to_cart", "purchase")
    assert [(s["step"], s["events"]) for s in today["funnel"]] == [(k, kinds[k]) for k in steps]

    pipeline = summary["pipeline"]
    assert pipeline["topic"] == settings.kafka.topic and pipeline["kafka_reachable"] is True
    groups = {g["group"]: g for g in pipeline["groups"]}
    assert set(groups) == {f"raw-{group}", f"stream-{group}"}
    for g in groups.values():
        assert g["lag"] == 0 and set(g["lag_by_partition"]) == {"0", "1", "2"}  # caught up: every message stored
        assert sum(g["per_minute"]) == 300 and len(g["per_minute"]) == 10  # every valid event, within ten minutes
        assert g["instances"] == 0  # both stopped cleanly: no heartbeat left behind
        assert g["last_commit"] is not None and g["freshness"] is not None

    requests = summary["privacy_requests"]
    assert (requests["open"], requests["overdue"]) == (3, 1)
    assert {d["bucket"]: (d["count"], d["by_type"]) for d in requests["deadlines"]} == {
        "overdue": (1, {"erasure": 1}),
        "due_within_3_days": (1, {"access": 1}),
        "due_within_7_days": (0, {}),
        "later": (1, {"objection": 1}),
    }
    assert [(r["job"], r["outcome"]) for r in summary["scheduler"]] == [("batch", "ok"), ("retention", "failed")]
    assert all(r["finished_at"] is not None for r in summary["scheduler"])
    assert summary["dead_letters"]["total"] == 1
    assert summary["dead_letters"]["by_reason"] == [{"reason": "not_json", "count": 1}]

    # Nothing of a person: no address, no user id, no error line.
    text = dashboard.http.get("/api/summary").text
    for private in ("@example", "jane", events[0].user_id, "status 2"):
        assert private not in text

    # The page shows the same, complete as rendered.
    page = dashboard.http.get("/")
    assert page.status_code == 200 and "script-src 'sha256-" in page.headers["content-security-policy"]
    assert '<span id="overdue" data-bind="privacy_requests.overdue" data-format="count">1</span>' in page.text
    assert f">{kinds['purchase']:,}</td>" in page.text


def test_without_kafka_the_lag_is_unknown_and_the_rest_is_shown(settings: Settings, tmp_path: Path) -> None:
    file_request(settings, "erasure", "-1 day")
    dashboard = start_dashboard(tmp_path, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    try:
        summary = dashboard.summary()
        assert summary["pipeline"]["kafka_reachable"] is False
        assert summary["privacy_requests"]["overdue"] == 1
        page = dashboard.http.get("/")
        assert page.status_code == 200
        assert '<p class="alert-text" id="kafka-down" data-hide="pipeline.kafka_reachable">' in page.text  # shown
    finally:
        assert dashboard.stop() == 0
    assert "lag unknown: Kafka at 127.0.0.1:1" in dashboard.output() and "Traceback" not in dashboard.output()


def test_it_listens_on_the_loopback_by_default_and_answers_hostile_requests_with_json(dashboard: Dashboard) -> None:
    assert dashboard.url.startswith("http://127.0.0.1:")
    summary = dashboard.http.get("/api/summary")
    assert summary.headers["cache-control"] == "no-store" and summary.headers["x-content-type-options"] == "nosniff"
    assert summary.headers["content-type"] == "application/json"

    refusals = [
        (dashboard.http.get("/admin"), 404, "no_such_path"),
        (dashboard.http.get("/api/summary/../../etc/passwd"), 404, "no_such_path"),
        (dashboard.http.post("/", content=b"x=1"), 405, "method_not_allowed"),
        (dashboard.http.delete("/api/summary"), 405, "method_not_allowed"),
        (dashboard.http.get("/api/summary", params={"q": "x" * 60_000}), 414, "query_too_long"),
        (dashboard.http.get("/", params={"q": "<script>" * 500}), 414, "query_too_long"),
    ]
    for answer, status, error in refusals:
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"] == error and answer.json()["detail"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in answer.text
    assert "GET" in refusals[2][0].headers["allow"]


def test_help_names_the_pages_and_settings() -> None:
    result = run_command("dashboard", "--help")
    assert result.returncode == 0
    assert "usage: python -m dashboard" in result.stdout
    for word in ("--host", "--port", "DASHBOARD_PORT", "GET /api/summary", "login_dashboard"):
        assert word in result.stdout


def test_an_unreachable_database_is_one_clear_line(settings: Settings) -> None:
    result = run_command("dashboard", "--port", "0", env={"DATABASE_URL": "postgresql://de_user:secret@127.0.0.1:1/de_db"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "127.0.0.1:1" in line and "make up" in line and "secret" not in line


def test_a_port_in_use_is_one_clear_line_naming_the_setting(dashboard: Dashboard) -> None:
    port = dashboard.url.rsplit(":", 1)[1]
    result = run_command("dashboard", "--port", port)
    assert result.returncode == 2
    assert "DASHBOARD_PORT" in result.stderr and "Traceback" not in result.stderr
    assert httpx.get(f"{dashboard.url}/healthz").status_code == 200  # the running one is untouched


def test_many_open_requests_are_counted_not_listed(settings: Settings, dashboard: Dashboard) -> None:
    """The summary counts requests per deadline bucket; it names none of them."""
    for n in range(30):
        # Due from 9.5 days ago to 19.5 days ahead: ten of them overdue, none due at this very moment.
        file_request(settings, "erasure", f"{n - 10} days 12 hours", email=f"person.{uuid.uuid4().hex[:6]}@example.org")
    requests = dashboard.summary()["privacy_requests"]
    assert requests["open"] == 30
    assert sum(d["count"] for d in requests["deadlines"]) == 30 and requests["overdue"] == 10
