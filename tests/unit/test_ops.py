"""ops/: the alert rules pass their tests against synthetic series (promtool), the Prometheus
configurations are valid, and the rules and dashboards name only metrics the code exports, and
only tables the dashboards' read-only login may read."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import core.sink.metrics
import gdpr.metrics
from core import metrics
from core.config import PROJECT_ROOT
from tests.prometheus import tool_or_skip

OPS = PROJECT_ROOT / "ops"
PROMETHEUS = OPS / "prometheus"
DASHBOARDS = sorted((OPS / "grafana" / "dashboards").glob("*.json"))
# Series every scrape has without any code of ours: Prometheus' own and the client's process metrics.
FOREIGN = re.compile(r"^(up|process_\w+|python_\w+)$")
# What login_reports (the analytics_reader group) may read: sql/003, sql/010.
READABLE_BY_REPORTS = {"events_raw", "metrics_streaming_daily", "metrics_batch_daily", "users_public", "consent_dropped_daily"}
# The modules whose instruments register in the client's default registry when imported.
INSTRUMENTED = (metrics, core.sink.metrics, gdpr.metrics)


def exported_names() -> set[str]:
    """Every sample name the platform's instruments expose (a histogram's _bucket, _sum, _count)."""
    assert all(module.__name__.endswith("metrics") for module in INSTRUMENTED)
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("platform_"):
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
    return names


def promql_names(expr: str) -> set[str]:
    """The metric names an expression selects (``platform_*`` and the foreign ones)."""
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=[{\[)\s]|$)", expr))
    return {w for w in words if w.startswith("platform_") or FOREIGN.match(w)}


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return board


def targets(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [target for panel in board["panels"] for target in panel.get("targets", [])]


def test_the_alert_rules_pass_their_tests_against_synthetic_series() -> None:
    promtool = tool_or_skip("promtool")
    tests = sorted(str(p) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert len(tests) >= 4
    result = subprocess.run([promtool, "test", "rules", *tests], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_has_a_test() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tested = {
        case["alertname"]
        for path in (PROMETHEUS / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert names - tested == set(), "alerts never seen firing in a test"


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-compose.yml"])
def test_the_prometheus_configurations_are_valid(name: str) -> None:
    promtool = tool_or_skip("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS / name)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboards_name_only_metrics_the_code_exports() -> None:
    exported = exported_names()
    prometheus_targets = [t for path in DASHBOARDS for t in targets(dashboard(path)) if "expr" in t]
    assert prometheus_targets
    for expr in alert_expressions() + [t["expr"] for t in prometheus_targets]:
        assert promql_names(expr), f"{expr}: selects no metric this test knows"
        named = {n for n in promql_names(expr) if not FOREIGN.match(n)}
        assert named <= exported, f"{expr}: {sorted(named - exported)} are not exported"


def test_the_dashboards_use_the_provisioned_data_sources() -> None:
    provisioned = yaml.safe_load((OPS / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
    sources = {(s["type"], s["uid"]) for s in provisioned["datasources"]}
    assert {path.stem for path in DASHBOARDS} == {"operations", "business"}
    uids = set()
    for path in DASHBOARDS:
        board = dashboard(path)
        assert board["uid"] not in uids
        uids.add(board["uid"])
        assert board["panels"]
        for target in targets(board):
            source = target["datasource"]
            assert (source["type"], source["uid"]) in sources, f"{path.name}: {source}"
    providers = yaml.safe_load((OPS / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def test_the_business_dashboard_reads_only_what_the_reports_login_may() -> None:
    sql_targets = [t for t in targets(dashboard(OPS / "grafana" / "dashboards" / "business.json")) if "rawSql" in t]
    assert len(sql_targets) >= 4
    for target in sql_targets:
        tables = set(re.findall(r"\bFROM\s+([a-z_]+)", target["rawSql"], re.IGNORECASE))
        own = set(re.findall(r"\b([a-z_]+)\s+AS\s*\(", target["rawSql"], re.IGNORECASE))  # WITH names
        assert tables - own <= READABLE_BY_REPORTS, target["rawSql"]
        assert "users_pii" not in target["rawSql"] and "privacy_requests" not in target["rawSql"]
