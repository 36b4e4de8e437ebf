"""Prometheus for tests: Debian's ``prometheus`` package (``prometheus`` and ``promtool``), a server
started on a free port against a configuration derived from ops/prometheus/prometheus.yml, and
its HTTP API polled until a query answers what a test expects (never slept for)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import PROJECT_ROOT, wait_until

OPS = PROJECT_ROOT / "ops" / "prometheus"


def tool_or_skip(name: str) -> str:
    """``promtool`` or ``prometheus`` from Debian's ``prometheus`` package; the test is skipped
    without it, and fails under REQUIRE_PROMETHEUS (CI, whose `.ci/run` installs it)."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("REQUIRE_PROMETHEUS"):
            pytest.fail(f"{name} is not installed (REQUIRE_PROMETHEUS is set): apt-get install prometheus")
        pytest.skip(f"{name} is not installed (Debian's `prometheus` package; `.ci/run` installs it)")
    return found


def scrape_config(targets: dict[str, str], scrape_s: float = 1.0) -> dict[str, Any]:
    """ops/prometheus/prometheus.yml with only the jobs in ``targets`` (job name -> host:port),
    scraped and evaluated every ``scrape_s``, with the platform's alert rules and no Alertmanager."""
    config: dict[str, Any] = yaml.safe_load((OPS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(targets) <= set(jobs), f"no such jobs in prometheus.yml: {sorted(set(targets) - set(jobs))}"
    config["scrape_configs"] = [{**jobs[name], "static_configs": [{"targets": [target]}]} for name, target in targets.items()]
    every = f"{round(scrape_s * 1000)}ms"
    config["global"] = {"scrape_interval": every, "evaluation_interval": every}
    config["rule_files"] = [str(OPS / name) for name in config["rule_files"]]
    config.pop("alerting", None)
    return config


@dataclass
class Prometheus:
    """A running Prometheus server and a client of its HTTP API."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query (its ``status`` says whether the expression parsed)."""
        answer: dict[str, Any] = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        return answer

    def values(self, expr: str) -> list[float]:
        """The sample values of an instant query's vector (empty while no series matches)."""
        answer = self.query(expr)
        assert answer["status"] == "success", answer
        return [float(sample["value"][1]) for sample in answer["data"]["result"]]

    def wait_for(self, expr: str, expected: float, timeout: float = 60) -> None:
        """Poll until ``expr`` is one series whose value is ``expected``."""
        seen: list[list[float]] = []

        def answered() -> bool:
            seen.append(self.values(expr))
            return seen[-1] == [expected]

        try:
            wait_until(answered, timeout=timeout, interval=0.25, what=f"{expr} == {expected}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last answer: {seen[-1] if seen else None}") from None

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule, as the API lists them (with the group's name under ``group``)."""
        groups = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [{**rule, "group": group["name"]} for group in groups for rule in group["rules"]]


@contextmanager
def running(config: dict[str, Any], port: int, directory: Path) -> Iterator[Prometheus]:
    """Prometheus with ``config`` on 127.0.0.1:``port``, its data in ``directory``; stopped after."""
    binary = tool_or_skip("prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = directory / "prometheus.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(process, f"http://127.0.0.1:{port}", log)

    def ready() -> bool:
        assert process.poll() is None, f"prometheus exited ({process.returncode}):\n{log.read_text()}"
        try:
            return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60, what="Prometheus to be ready")
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
