"""Metrics end to end: a real raw-events consumer, a real collector and a real scheduler with
``--metrics-port``, a real Prometheus (Debian's package) scraping them with the platform's own configuration and alert
rules, and its HTTP API asked until the series say what happened. Nothing of a person reaches a
label."""

from __future__ import annotations

import json
import signal
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

import devstack
from core import db
from core.config import Settings
from tests import prometheus
from tests.helpers import PROJECT_ROOT, RAW, produce, start_service, wait_caught_up, wait_until
from tests.integration.collector.conftest import create_key, event, start_collector
from tests.integration.scheduler.test_scheduler import quiet_schedule, start_scheduler

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUPS = {"consumers", "reconciliation-and-jobs", "privacy-requests", "services"}
PLANTED_EMAIL = "planted.person.metrics@example.org"
UNROUTED = "/v1/people/zq-unrouted-path"


def dashboard_targets(name: str) -> list[dict[str, str]]:
    """The queries of a provisioned dashboard's panels."""
    board = json.loads((PROJECT_ROOT / "ops" / "grafana" / "dashboards" / f"{name}.json").read_text(encoding="utf-8"))
    return [target for panel in board["panels"] for target in panel.get("targets", [])]


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the operations dashboard."""
    return [target["expr"] for target in dashboard_targets("operations") if "expr" in target]


def grafana_sql(raw: str, start: str, end: str) -> str:
    """A panel's SQL as Grafana's PostgreSQL data source sends it, its time macros expanded."""
    return (
        raw.replace("$__timeFrom()", f"'{start}'")
        .replace("$__timeTo()", f"'{end}'")
        .replace("$__timeFilter(event_timestamp)", f"event_timestamp BETWEEN '{start}' AND '{end}'")
    )


def test_the_business_dashboard_runs_as_the_reports_login(settings: Settings) -> None:
    """Each panel's SQL, as Grafana sends it, runs as login_reports and answers a number per column."""
    queries = [target["rawSql"] for target in dashboard_targets("business")]
    assert queries and all("$__" not in grafana_sql(q, "2026-01-01T00:00:00Z", "2026-01-01T06:00:00Z") for q in queries)
    with db.connection(settings.database, role=db.ANALYTICS_ROLE) as conn, conn, conn.cursor() as cur:
        for raw_sql in queries:
            cur.execute(grafana_sql(raw_sql, "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z"))
            assert cur.description is not None


def test_prometheus_scrapes_what_the_consumer_and_the_collector_did(settings: Settings, group: str, tmp_path: Path) -> None:
    prometheus.tool_or_skip("prometheus")
    raw_port, collector_port, server_port = devstack.free_port(), devstack.free_port(), devstack.free_port()
    key = create_key("metrics-test", "--rate", "10000")
    batches = [[event(user_id=str(uuid.uuid4())) for _ in range(40)], [event(metadata={"contact": PLANTED_EMAIL})]]
    sent = sum(len(batch) for batch in batches)
    invalid = [b"not json at all", b"{}"]

    raw = start_service(RAW, f"raw-{group}", tmp_path, args=("--metrics-port", str(raw_port)))
    collector = start_collector(tmp_path, args=("--metrics-port", str(collector_port)))
    config = prometheus.scrape_config({"raw-consumer": f"127.0.0.1:{raw_port}", "collector": f"127.0.0.1:{collector_port}"})
    try:
        with prometheus.running(config, server_port, tmp_path / "prometheus") as server:
            for batch in batches:
                answer = collector.post("/v1/events", json.dumps(batch).encode(), key)
                assert answer.status_code == 202, answer.text
            assert collector.http.get(UNROUTED).status_code == 404
            assert collector.http.get("/healthz").status_code == 200
            produce(settings, [(None, payload) for payload in invalid])
            wait_caught_up(settings, f"raw-{group}")

            # The consumer: every message decided, the valid ones stored, the rest by reason.
            sink = f'job="raw-consumer", group="raw-{group}"'
            server.wait_for("up{job='raw-consumer'}", 1)
            server.wait_for(f"platform_sink_events_consumed_total{{{sink}}}", sent + len(invalid))
            server.wait_for(f"platform_sink_events_stored_total{{{sink}}}", sent)
            server.wait_for(f'platform_sink_dead_letters_total{{{sink}, reason="not_json"}}', 1)
            server.wait_for(f'platform_sink_dead_letters_total{{{sink}, reason="missing_field"}}', 1)
            server.wait_for(f"platform_sink_batch_size_sum{{{sink}}}", sent + len(invalid))
            server.wait_for('platform_ingest_redactions_total{job="raw-consumer", kind="email"}', 1)
            # Lag per partition of the topic (3), all caught up; every batch's freshness observed.
            server.wait_for(f"count(platform_sink_lag_messages{{{sink}}})", 3)
            server.wait_for(f"sum(platform_sink_lag_messages{{{sink}}})", 0)
            batches_committed = server.values(f"platform_sink_batch_size_count{{{sink}}}")
            assert batches_committed and batches_committed[0] >= 1
            server.wait_for(f"platform_sink_batch_freshness_seconds_count{{{sink}}}", batches_committed[0])
            assert server.values(f"platform_sink_freshness_seconds{{{sink}}} >= 0") != []
            assert server.values(f"platform_sink_broker_reachable{{{sink}}}") == [1]
            # Its last commit is recent by its own clock (no wall-clock comparison with this test).
            assert server.values(f"platform_sink_last_commit_timestamp_seconds{{{sink}}}") != []

            # The collector: requests by route template and status, an unknown path as "other".
            server.wait_for("up{job='collector'}", 1)
            server.wait_for('platform_http_requests_total{job="collector", route="/v1/events", method="POST", status="202"}', 2)
            server.wait_for('platform_http_requests_total{job="collector", route="other", method="GET", status="404"}', 1)
            server.wait_for('platform_http_requests_total{job="collector", route="/healthz", method="GET", status="200"}', 1)
            server.wait_for('platform_http_request_duration_seconds_count{job="collector", route="/v1/events"}', 2)

            # The alert rules load and evaluate; every dashboard expression parses.
            def rules_evaluated() -> bool:
                rules = server.rules()
                return {r["group"] for r in rules} == GROUPS and all(r["health"] == "ok" for r in rules)

            wait_until(rules_evaluated, timeout=60, what="every alert rule evaluated without error")
            for expr in dashboard_expressions():
                assert server.query(expr)["status"] == "success", expr

            # Nothing of a person in any label or value the exporters serve.
            for port in (raw_port, collector_port):
                exposed = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
                assert "platform_" in exposed
                for secret in (PLANTED_EMAIL, "planted.person", "zq-unrouted-path", key):
                    assert secret not in exposed
                for sent_event in (e for batch in batches for e in batch):
                    assert sent_event["user_id"] not in exposed and sent_event["event_id"] not in exposed
    finally:
        assert raw.stop() == 0, raw.output()
        assert collector.stop() == 0, collector.output()


def test_a_taken_metrics_port_is_one_line_naming_what_to_do(settings: Settings, group: str, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # another program holds the port
        port = int(taken.getsockname()[1])
        consumer = start_service(RAW, f"raw-{group}", tmp_path, args=("--metrics-port", str(port)))
        assert consumer.process.wait(timeout=60) == 2
    output = consumer.output().strip()
    assert output.splitlines()[-1].startswith(f"error: cannot serve metrics on 127.0.0.1:{port} (")
    assert "--metrics-port" in output and "Traceback" not in output


def test_prometheus_sees_the_schedulers_jobs_and_the_reconciliation(settings: Settings, tmp_path: Path) -> None:
    """A scheduler that starts with nothing run yet catches every job up, and a real Prometheus
    sees each job's interval, success and outcome (under the job's own name: honor_labels) and the
    nightly comparison's drift."""
    prometheus.tool_or_skip("prometheus")
    metrics_port, server_port = devstack.free_port(), devstack.free_port()
    env = {**quiet_schedule(datetime.now(UTC)), "SCHEDULER_CATCH_UP": "true"}
    scheduler = start_scheduler(tmp_path / "scheduler.log", "--metrics-port", str(metrics_port), env=env)
    config = prometheus.scrape_config({"scheduler": f"127.0.0.1:{metrics_port}"})
    try:
        with prometheus.running(config, server_port, tmp_path / "prometheus") as server:
            server.wait_for("platform_job_interval_seconds{job='batch'}", 86_400)
            server.wait_for("platform_job_interval_seconds{job='privacy-deadlines'}", 3_600)
            server.wait_for("platform_job_interval_seconds{job='gdpr-audit-report'}", 7 * 86_400)
            for job in ("batch", "daily-report", "gdpr-audit-report", "retention", "privacy-deadlines"):
                server.wait_for(f"platform_job_last_outcome{{job='{job}'}}", 1, timeout=120)
                assert server.values(f"platform_job_last_success_timestamp_seconds{{job='{job}'}} > 0") != []
            # Nothing drifts on an empty database: the comparison agreed.
            server.wait_for("platform_reconciliation_drift_days", 0)
        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(timeout=60) == 0, (tmp_path / "scheduler.log").read_text()
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait(timeout=30)
