"""The live dashboard as a real service on the real stack: what /api/summary says after the real
consumers stored known events and dead-lettered a bad one, with a request overdue and one due
tomorrow and a scheduler run recorded; Kafka down; hostile requests; its command line."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg2.errors
import pytest

from analytics import funnels
from core import db
from core.cli import today_utc
from core.config import Settings
from core.events import user_uuid
from dashboard import summary as summary_module
from tests.helpers import consume_all, known_events, produce, produce_events, query, run_command
from tests.integration.dashboard.conftest import Dashboard, file_request, naive_people_funnel, record_run, start_dashboard

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
    # The ordered funnel of people, as a naive count over the same events says, under the k-rule.
    people = naive_people_funnel(((e.user_id, e.event_type, e.event_timestamp) for e in events), today_utc(), 3600)
    assert people.rows and people.rows[0].viewed >= 5
    assert today["funnel"] == summary_module.funnel(people, settings.report_min_cell_users)

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
    assert f'data-format="people">{people.rows[0].viewed:,}</td>' in page.text


def test_todays_people_funnel_equals_a_naive_count_over_todays_events_ordered_or_not(settings: Settings) -> None:
    """Today has no summaries (the day is open): the dashboard's login asks the owner's function,
    which applies the summaries' very rules to today's partition and returns counts only."""
    today = today_utc()
    query(settings, "SELECT events_raw_create_partitions(%s, %s)", (today - timedelta(days=1), today + timedelta(days=1)))
    start = datetime.combine(today, time(), UTC)
    rows: list[tuple[str, str, datetime]] = []
    for n in range(40):
        user, at = str(user_uuid(5000 + n)), start + timedelta(seconds=600 + 1800 * n)
        pattern = n % 5
        if pattern == 0:  # in order, within the window
            rows += [(user, "page_view", at), (user, "add_to_cart", at + timedelta(seconds=30 + n)),
                     (user, "purchase", at + timedelta(seconds=200 + 3 * n))]  # fmt: skip
        elif pattern == 1:  # out of order: the purchase before the cart, the cart before the view
            rows += [(user, "add_to_cart", at), (user, "page_view", at + timedelta(seconds=5)),
                     (user, "purchase", at + timedelta(seconds=10)),
                     (user, "add_to_cart", at + timedelta(seconds=20 + n))]  # fmt: skip
        elif pattern == 2:  # the purchase one second past the window
            rows += [(user, "page_view", at), (user, "add_to_cart", at + timedelta(seconds=60)),
                     (user, "purchase", at + timedelta(seconds=3601))]  # fmt: skip
        elif pattern == 3:  # two views, then a cart: the later view led to it
            rows += [(user, "page_view", at), (user, "page_view", at + timedelta(seconds=100 + n)),
                     (user, "add_to_cart", at + timedelta(seconds=400))]  # fmt: skip
        else:  # a view alone, and a purchase without a view
            rows += [(user, "page_view", at), (str(user_uuid(9000 + n)), "purchase", at)]
    # Yesterday's complete sequences are not today's.
    rows_yesterday = [(str(user_uuid(7000 + n)), kind, start - timedelta(hours=2) + timedelta(seconds=n))
                      for n in range(10) for kind in ("page_view", "add_to_cart", "purchase")]  # fmt: skip
    for offset, (user, kind, at) in enumerate(rows + rows_yesterday):
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, kafka_partition,"
            " kafka_offset) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, 0, %s)",
            (user, kind, at, at.date(), "1.00" if kind == "purchase" else None, offset),
        )
    window = settings.analytics_funnel_window_s
    expected = naive_people_funnel(rows, today, window)
    assert expected.rows[0].people == (40, 32, 8)  # the patterns' own arithmetic, and the naive count agrees
    with db.connection(settings.database, application_name="test", role=db.DASHBOARD_ROLE) as conn, conn, conn.cursor() as cur:
        found = funnels.open_day(cur, window_s=window)
        # The login gets counts only: the rows with user ids stay with the owner.
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT * FROM analytics_person_day_rows(%s, %s)", (today, window))
    assert found.rows[0].people == expected.rows[0].people
    assert found.rows[0].median_view_to_cart_s == pytest.approx(expected.rows[0].median_view_to_cart_s)
    assert found.rows[0].median_cart_to_purchase_s == pytest.approx(expected.rows[0].median_cart_to_purchase_s)
    assert query(settings, "SELECT count(*) FROM analytics_person_days") == [(0,)]  # nothing written


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
