"""The broker goes away: a 503 with Retry-After, and no event is claimed accepted."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import devstack
from core import kafka
from core.config import Settings, load_kafka_settings
from core.errors import PlatformError
from tests.helpers import wait_until
from tests.integration.collector.conftest import assert_error, event, start_collector, wait_for_status

pytestmark = pytest.mark.integration


@dataclass
class OwnBroker:
    bootstrap: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_broker(settings: Settings, tmp_path: Path) -> Iterator[OwnBroker]:
    """A broker of this test's own (Tansu, in memory), which the test may stop."""
    url = f"tcp://127.0.0.1:{devstack.free_port()}"
    with open(tmp_path / "tansu.log", "wb") as log:
        process = subprocess.Popen(
            devstack.tansu_command(url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    bootstrap = url.removeprefix("tcp://")

    def topic_created() -> bool:
        try:
            kafka.ensure_topic(load_kafka_settings(bootstrap), settings.kafka.topic, partitions=3)
        except PlatformError:
            return False
        return True

    broker = OwnBroker(bootstrap, process)
    try:
        wait_until(topic_created, timeout=30, what="the test's own broker")
        yield broker
    finally:
        broker.kill()


def test_events_the_broker_did_not_acknowledge_are_503_and_not_accepted(
    own_broker: OwnBroker, settings: Settings, write_key: str, tmp_path: Path
) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap, "COLLECTOR_DELIVERY_TIMEOUT_MS": "1500"}
    running = start_collector(tmp_path, env=env)
    try:
        body = json.dumps([event(), event()]).encode()
        assert running.post("/v1/events", body, write_key).status_code == 202

        own_broker.kill()
        batch = [event(), {"event_id": "invalid"}, event()]
        response = running.post("/v1/events", json.dumps(batch).encode(), write_key)

        assert_error(response, 503, "broker_unavailable")
        assert response.headers["retry-after"] == str(settings.collector.retry_after_s)
        result = response.json()
        assert result["accepted"] == 0 and result["rejected"] == 3
        assert [r["reason"] for r in result["results"]] == ["broker_unavailable", "missing_field", "broker_unavailable"]
        assert all("send it again" in r["detail"] for r in result["results"] if r["reason"] == "broker_unavailable")

        assert running.http.get("/healthz").status_code == 200  # the process is alive...
        ready = wait_for_status(lambda: running.http.get("/readyz"), 503)  # ...but not ready
        assert ready.json()["broker"].startswith("down") and ready.json()["database"] == "ok"
    finally:
        code = running.stop()
    assert code == 0, running.output()
