"""core.metrics: the --metrics-port argument, the exporter, the HTTP middleware and the scheduler's
job gauges, without services (a local exporter on a free port, Falcon's test client)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import falcon
import falcon.asgi
import falcon.testing
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from core import metrics
from core.config import MetricsSettings, Settings, load_settings
from core.errors import ConfigError


def value(name: str, **labels: str) -> float:
    """A sample of the default registry (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


# -- the argument and the port ------------------------------------------------------------------


def test_every_service_has_a_port_of_its_own() -> None:
    ports = list(metrics.DEFAULT_PORTS.values())
    assert len(set(ports)) == len(ports)
    assert all(1024 < port < 65536 for port in ports)


def parser(module: str = "collector") -> argparse.ArgumentParser:
    built = argparse.ArgumentParser(prog="test")
    metrics.add_metrics_argument(built, module)
    return built


def test_metrics_port_takes_a_port_number_or_zero() -> None:
    assert parser().parse_args(["--metrics-port", "9999"]).metrics_port == 9999
    assert parser().parse_args(["--metrics-port", "0"]).metrics_port == 0
    assert parser().parse_args([]).metrics_port is None
    for bad in ("65536", "-1", "ninety"):
        with pytest.raises(SystemExit):
            parser().parse_args(["--metrics-port", bad])


def test_the_help_names_the_default_port_and_how_to_turn_metrics_off() -> None:
    text = parser("consumers.store_raw_events").format_help()
    assert "--metrics-port P" in text and "9101" in text and "0 turns them off" in text and "METRICS_ENABLED" in text


def settings(tmp_path: Path, **values: str) -> Settings:
    return load_settings({"STACK_FILE": str(tmp_path / "absent.env"), **values})


def test_a_given_port_wins_then_the_services_default_unless_metrics_are_disabled(tmp_path: Path) -> None:
    on, off = settings(tmp_path), settings(tmp_path, METRICS_ENABLED="false")
    assert metrics.chosen_port(on, "console", None) == metrics.DEFAULT_PORTS["console"] == 9106
    assert metrics.chosen_port(on, "console", 9999) == 9999
    assert metrics.chosen_port(on, "console", 0) == 0
    assert metrics.chosen_port(off, "console", None) == 0
    assert metrics.chosen_port(off, "console", 9999) == 9999


def test_metrics_settings_are_validated(tmp_path: Path) -> None:
    assert settings(tmp_path).metrics == MetricsSettings(host="127.0.0.1", enabled=True)
    assert settings(tmp_path, METRICS_HOST="0.0.0.0").metrics.host == "0.0.0.0"  # noqa: S104 - compose's containers
    with pytest.raises(ConfigError, match="METRICS_ENABLED"):
        settings(tmp_path, METRICS_ENABLED="perhaps")
    with pytest.raises(ConfigError, match="METRICS_HOST"):
        settings(tmp_path, METRICS_HOST=" ")


# -- the exporter -------------------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    own = CollectorRegistry()
    Counter("unit_test_things", "Things counted by a unit test.", registry=own).inc(3)
    return own


def test_the_exporter_serves_the_registry_on_the_port(registry: CollectorRegistry) -> None:
    exporter = metrics.start_exporter("127.0.0.1", free_port(), registry)
    assert exporter is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    finally:
        exporter.close()
    assert "unit_test_things_total 3.0" in text
    assert "unit_test_things_created" not in text  # no _created series


def test_port_zero_starts_no_exporter(registry: CollectorRegistry) -> None:
    assert metrics.start_exporter("127.0.0.1", 0, registry) is None


def test_a_taken_port_is_one_line_saying_what_to_do(registry: CollectorRegistry) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])
        with pytest.raises(ConfigError) as refused:
            metrics.start_exporter("127.0.0.1", port, registry)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"cannot serve metrics on 127.0.0.1:{port} (")
    assert "another --metrics-port" in message and "--metrics-port 0" in message


# -- the HTTP middleware ------------------------------------------------------------------------


class Item:
    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response, item_id: int) -> None:
        resp.media = {"id": item_id}

    async def on_post(self, _req: falcon.asgi.Request, _resp: falcon.asgi.Response, item_id: int) -> None:
        raise falcon.HTTPConflict()


@pytest.fixture
def client() -> Iterator[falcon.testing.TestClient]:
    app = falcon.asgi.App(middleware=[metrics.HttpMetrics()])
    app.add_route("/unit-items/{item_id:int(min=1)}", Item())
    yield falcon.testing.TestClient(app)


ROUTE = "/unit-items/{item_id}"


def test_requests_are_counted_by_route_template_method_and_status(client: falcon.testing.TestClient) -> None:
    before_ok = value("platform_http_requests_total", route=ROUTE, method="GET", status="200")
    before_conflict = value("platform_http_requests_total", route=ROUTE, method="POST", status="409")
    before_timed = value("platform_http_request_duration_seconds_count", route=ROUTE, method="GET")
    assert client.simulate_get("/unit-items/41").status_code == 200
    assert client.simulate_get("/unit-items/42").status_code == 200
    assert client.simulate_post("/unit-items/42").status_code == 409
    assert value("platform_http_requests_total", route=ROUTE, method="GET", status="200") == before_ok + 2
    assert value("platform_http_requests_total", route=ROUTE, method="POST", status="409") == before_conflict + 1
    assert value("platform_http_request_duration_seconds_count", route=ROUTE, method="GET") == before_timed + 2


def test_no_path_and_no_invented_method_becomes_a_label(client: falcon.testing.TestClient) -> None:
    before = value("platform_http_requests_total", route="other", method="GET", status="404")
    before_odd = value("platform_http_requests_total", route=ROUTE, method="other", status="405")
    assert client.simulate_get("/people/jane.doe@example.org").status_code == 404
    assert client.simulate_request("PROPFIND", "/unit-items/7").status_code == 405
    assert value("platform_http_requests_total", route="other", method="GET", status="404") == before + 1
    assert value("platform_http_requests_total", route=ROUTE, method="other", status="405") == before_odd + 1
    labels = {v for metric in REGISTRY.collect() for sample in metric.samples for v in sample.labels.values()}
    assert not any("jane" in label or "PROPFIND" in label or "/unit-items/7" in label for label in labels)


def test_route_labels_drop_field_converters() -> None:
    assert metrics.route_label("/requests/{request_id:int(min=1, max=9)}/{action}") == "/requests/{request_id}/{action}"
    assert metrics.route_label("/v1/events") == "/v1/events"
    assert metrics.route_label(None) == metrics.UNMATCHED_ROUTE


# -- the scheduler's gauges ---------------------------------------------------------------------


def test_job_names_may_use_underscores_and_hyphens() -> None:
    metrics.record_job_run("daily-report_2", succeeded=True, started_at=0, finished_at=1)
    assert value("platform_job_last_outcome", job="daily-report_2") == 1


def test_a_job_run_sets_its_outcome_and_its_last_success() -> None:
    metrics.expect_job("unit_nightly", 86_400)
    metrics.record_job_run("unit_nightly", succeeded=True, started_at=1_000.0, finished_at=1_060.0)
    metrics.record_job_run("unit_nightly", succeeded=False, started_at=2_000.0, finished_at=2_005.0)
    assert value("platform_job_interval_seconds", job="unit_nightly") == 86_400
    assert value("platform_job_last_outcome", job="unit_nightly") == 0
    assert value("platform_job_last_success_timestamp_seconds", job="unit_nightly") == 1_060
    assert value("platform_job_last_run_timestamp_seconds", job="unit_nightly") == 2_005
    assert value("platform_job_last_duration_seconds", job="unit_nightly") == 5


@pytest.mark.parametrize("name", ["", "Batch", "jane@example.org", "batch metrics", "x" * 64, "1st", "-x"])
def test_a_job_name_is_a_short_identifier(name: str) -> None:
    with pytest.raises(ValueError, match="job name"):
        metrics.record_job_run(name, succeeded=True, started_at=0, finished_at=1)


def test_reconciliation_drift_is_a_count_of_days() -> None:
    metrics.record_reconciliation(2)
    assert value("platform_reconciliation_drift_days") == 2
    metrics.record_reconciliation(0)
    assert value("platform_reconciliation_drift_days") == 0
    with pytest.raises(ValueError, match="negative"):
        metrics.record_reconciliation(-1)


def test_a_taken_default_port_moves_up_in_steps_of_100_and_the_log_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A second instance on one host finds its default port taken (docs/architecture.md, several instances per group): it
    serves on the next free port of its range instead of refusing to start."""
    with socket.create_server(("127.0.0.1", 0)) as first:
        default = int(first.getsockname()[1])
        monkeypatch.setitem(metrics.DEFAULT_PORTS, "consumers.store_raw_events", default)
        taken_too = [p for p in metrics.fallback_ports(default, 2) if p != default][:1]
        with contextlib.ExitStack() as held:
            for port in taken_too:
                with contextlib.suppress(OSError):
                    held.enter_context(socket.create_server(("127.0.0.1", port)))
            with caplog.at_level(logging.INFO, logger="core.metrics"):
                exporter = metrics.serve(settings(tmp_path), "consumers.store_raw_events", None)
    assert exporter is not None
    try:
        assert exporter.port in metrics.fallback_ports(default, 16)
        assert exporter.port not in taken_too
        assert f"metrics port {default} is taken" in caplog.text and f"serving on {exporter.port} instead" in caplog.text
    finally:
        exporter.close()


def test_a_taken_port_given_explicitly_stays_an_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            metrics.serve(settings(tmp_path), "consumers.store_raw_events", port)


def test_when_the_whole_range_is_taken_the_error_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = int(taken.getsockname()[1])
        monkeypatch.setitem(metrics.DEFAULT_PORTS, "consumers.store_raw_events", port)
        with pytest.raises(ConfigError) as refused:
            metrics.serve(settings(tmp_path, METRICS_PORT_RETRIES="0"), "consumers.store_raw_events", None)
    assert f"the default port {port} and the 0 tried after it" in str(refused.value)
    assert metrics.fallback_ports(9101, 16) == [9101 + 100 * n for n in range(1, 17)]
    assert not set(metrics.fallback_ports(9101, 16)) & set(metrics.DEFAULT_PORTS.values())
