"""The privacy API's HTTP layer in process: what is refused before the database is asked anything
(the API here points at a database that does not exist: touching it would be a 503), JSON errors,
and a defect logged by its type alone. The real server is tested in tests/integration/gdpr."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from falcon import testing

from core.config import DatabaseSettings, KafkaSettings, Settings, SinkSettings
from gdpr.api import tokens
from gdpr.api.app import create_app
from gdpr.api.payloads import NewRequest
from gdpr.api.service import Answer, PrivacyApi
from gdpr.api.store import LOGIN

SETTINGS = Settings(
    database=DatabaseSettings(url="postgresql://u:p@127.0.0.1:1/nowhere", statement_timeout_ms=1000),
    kafka=KafkaSettings(bootstrap_servers="localhost:9092", topic="t", partitions=1),
    sink=SinkSettings(batch_size=1, batch_seconds=1.0),
    reports_dir=Path("reports"),
    log_level="INFO",
    hmac_key_text="unit-test-key",
)
SECRET = tokens.new_secret()
JSON = {"Content-Type": "application/json"}


class Broken(PrivacyApi):
    """Filing fails with a message that quotes the address."""

    async def file(self, new: NewRequest, client: str) -> Answer:
        raise RuntimeError(f"cannot file for {new.address}")


@pytest.fixture
def client() -> testing.TestClient:
    return testing.TestClient(create_app(Broken(SETTINGS, LOGIN.open(SETTINGS.database))))


def assert_error(result: testing.Result, status: int, code: str) -> None:
    assert result.status_code == status, result.text
    assert result.headers["content-type"] == "application/json"
    assert result.headers["cache-control"] == "no-store"
    assert result.json["error"] == code and result.json["detail"]


@pytest.mark.parametrize(
    "path", ["/v1/privacy-requests/abc", "/v1/privacy-requests/0/export", "/v1/privacy-requests/99999999999999999999"]
)
def test_an_id_that_cannot_be_one_is_a_404_without_a_query(client: testing.TestClient, path: str) -> None:
    assert_error(client.simulate_get(path, headers={"Authorization": f"Bearer {SECRET}"}), 404, "not_found")


def test_a_secret_that_cannot_be_one_is_a_404_without_a_query(client: testing.TestClient) -> None:
    assert_error(client.simulate_get("/v1/privacy-requests/1", headers={"Authorization": "Bearer ' OR 1=1 --"}), 404, "not_found")
    assert_error(client.simulate_get("/v1/privacy-requests/1"), 401, "missing_secret")


def test_a_verification_is_checked_before_the_database(client: testing.TestClient) -> None:
    auth = {"Authorization": f"Bearer {SECRET}"}
    assert_error(client.simulate_post("/v1/privacy-requests/1/verify", headers=auth, body="{}"), 415, "unsupported_media_type")
    assert_error(client.simulate_post("/v1/privacy-requests/1/verify", headers={**auth, **JSON}, body="{}"), 400, "invalid_body")
    assert_error(
        client.simulate_post("/v1/privacy-requests/1/verify", headers={**auth, **JSON}, body='{"code": "x"}'),
        400,
        "malformed_code",
    )
    too_long = "{" + " " * 20_000 + "}"
    assert_error(
        client.simulate_post("/v1/privacy-requests/1/verify", headers={**auth, **JSON}, body=too_long), 413, "body_too_large"
    )


def test_an_unreachable_database_is_a_503_to_send_again_later(client: testing.TestClient) -> None:
    result = client.simulate_get("/v1/privacy-requests/1", headers={"Authorization": f"Bearer {SECRET}"})
    assert_error(result, 503, "database_unavailable")
    assert result.headers["retry-after"] == "30"


def test_an_unforeseen_defect_is_a_json_500_logged_by_type_only(
    client: testing.TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        result = client.simulate_post(
            "/v1/privacy-requests", headers=JSON, body='{"email": "jane@example.org", "type": "access"}'
        )
    assert_error(result, 500, "internal_error")
    assert "RuntimeError" in caplog.text and "jane" not in caplog.text


def test_unknown_paths_and_methods_answer_json(client: testing.TestClient) -> None:
    assert_error(client.simulate_get("/v1/privacy"), 404, "no_such_path")
    assert_error(client.simulate_put("/v1/privacy-requests"), 405, "method_not_allowed")
    assert client.simulate_get("/healthz").json == {"status": "ok"}
