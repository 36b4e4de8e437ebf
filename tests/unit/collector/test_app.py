"""The HTTP layer in process: every error is JSON, and an unforeseen defect is a 500 logged by its
type alone (the statuses a real server answers are tested in tests/integration/collector)."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from falcon import testing

from collector.app import create_app
from collector.auth import KeyRing, WriteKey, hash_key
from collector.service import Answer, Collector
from core.config import CollectorSettings

KEY = "ck_unit-test-key"
SECRET = "jane.doe@example.com"


class Broken(Collector):
    """A collector with a defect: ingesting fails with a message that quotes the request."""

    async def ingest(self, payload: bytes, media_type: str) -> Answer:
        raise RuntimeError(f"cannot handle {SECRET}")


@pytest.fixture
def client() -> testing.TestClient:
    keys = KeyRing({hash_key(KEY): WriteKey(1, "web", frozenset({"https://shop.example"}), 1000)})
    return testing.TestClient(create_app(Broken(CollectorSettings(), cast(Any, None), cast(Any, None), keys)))


def test_an_unforeseen_defect_is_a_json_500_logged_by_type_only(
    client: testing.TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        result = client.simulate_post(
            "/v1/events",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
            body=f'{{"a":"{SECRET}"}}',
        )
    assert result.status_code == 500
    assert result.headers["content-type"] == "application/json"
    assert result.json["error"] == "internal_error" and result.json["detail"]
    assert "RuntimeError" in caplog.text
    assert SECRET not in caplog.text and "Traceback" not in caplog.text


def test_a_browser_can_read_the_error_when_its_origin_is_allowed(client: testing.TestClient) -> None:
    result = client.simulate_post("/v1/events", headers={"Origin": "https://shop.example", "Content-Type": "application/json"})
    assert result.status_code == 401
    assert result.headers["access-control-allow-origin"] == "https://shop.example"
    assert result.headers["vary"] == "Origin"
    other = client.simulate_post("/v1/events", headers={"Origin": "https://evil.example"})
    assert other.status_code == 401 and "access-control-allow-origin" not in other.headers


def test_unknown_paths_and_methods_answer_json(client: testing.TestClient) -> None:
    missing = client.simulate_get("/v2/events")
    assert (missing.status_code, missing.json["error"]) == (404, "not_found")
    wrong = client.simulate_delete("/v1/events")
    assert (wrong.status_code, wrong.json["error"]) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["allow"]
