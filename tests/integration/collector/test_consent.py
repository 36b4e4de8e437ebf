"""POST /v1/consent: a change appended to the ledger as ``collector:<key name>``; 503 while the
database is away, when events still flow on the keys the collector already knows."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from core.config import Settings
from data_generators.generate_users import generated_user_id
from tests.helpers import query, run_command, wait_until
from tests.integration.collector.conftest import (
    Collector,
    TcpProxy,
    assert_error,
    create_key,
    event,
    start_collector,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def consent(user_id: object = None, purpose: str = "analytics", granted: bool = True) -> bytes:
    return json.dumps({"user_id": user_id or str(uuid.uuid4()), "purpose": purpose, "granted": granted}).encode()


def test_a_change_is_appended_to_the_ledger_with_the_keys_name(collector: Collector, write_key: str, settings: Settings) -> None:
    user = str(uuid.uuid4())
    response = collector.post("/v1/consent", consent(user.upper(), granted=False), write_key)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["user_id"], body["purpose"], body["granted"]) == (user, "analytics", False)
    effective_at = datetime.fromisoformat(body["effective_at"])
    rows = query(settings, "SELECT user_id::text, purpose, granted, source, effective_at FROM consent_ledger")
    assert rows == [(user, "analytics", False, "collector:web", effective_at)]

    numeric = collector.post("/v1/consent", consent(42, purpose="marketing_email"), write_key)
    assert numeric.status_code == 201
    assert numeric.json()["user_id"] == "00000000-0000-0000-0000-00000000002a"


def test_a_grant_for_a_restricted_user_is_refused_until_the_restriction_is_lifted(
    collector: Collector, write_key: str, settings: Settings
) -> None:
    user = str(uuid.uuid4())
    query(
        settings,
        "INSERT INTO privacy_requests (email, request_type, status) VALUES ('r@example.com', 'restriction', 'completed')",
    )
    query(settings, "INSERT INTO processing_restrictions (request_id, user_id) SELECT max(id), %s FROM privacy_requests", (user,))
    assert_error(collector.post("/v1/consent", consent(user), write_key), 409, "processing_restricted")
    # A withdrawal, or another purpose, is still recorded.
    assert collector.post("/v1/consent", consent(user, granted=False), write_key).status_code == 201
    assert collector.post("/v1/consent", consent(user, purpose="marketing_email"), write_key).status_code == 201
    query(settings, "UPDATE processing_restrictions SET lifted_at = now()")
    assert collector.post("/v1/consent", consent(user), write_key).status_code == 201
    assert query(settings, "SELECT purpose, granted FROM consent_ledger ORDER BY id") == [
        ("analytics", False),
        ("marketing_email", True),
        ("analytics", True),
    ]


def test_an_erased_user_id_cannot_be_given_consent_again(collector: Collector, write_key: str, settings: Settings) -> None:
    """An erasure withdraws every consent for good: a grant for the former id, of any purpose, is
    refused (409 with the reason), so nobody holding a consent key can undo it."""
    assert run_command("data_generators.generate_users", "--count", "2", "--seed", "9").returncode == 0
    user = generated_user_id(9, 1)
    assert collector.post("/v1/consent", consent(user), write_key).status_code == 201
    [(email,)] = query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (user,))
    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (email,))
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    [(last,)] = query(settings, "SELECT source FROM consent_ledger WHERE user_id = %s ORDER BY id DESC LIMIT 1", (user,))
    assert last == "erasure"
    [(grants,)] = query(settings, "SELECT count(*) FROM consent_ledger WHERE user_id = %s AND granted", (user,))

    response = collector.post("/v1/consent", consent(user), write_key)
    assert_error(response, 409, "consent_after_erasure")
    assert "new identity" in response.json()["detail"]
    assert_error(
        collector.post("/v1/consent", consent(user.upper(), purpose="marketing_email"), write_key), 409, "consent_after_erasure"
    )
    # A withdrawal is still recorded, and somebody else is not affected.
    assert collector.post("/v1/consent", consent(user, granted=False), write_key).status_code == 201
    assert collector.post("/v1/consent", consent(generated_user_id(9, 2)), write_key).status_code == 201
    assert query(settings, "SELECT count(*) FROM consent_ledger WHERE user_id = %s AND granted", (user,)) == [(grants,)]


def test_a_key_issued_for_events_only_cannot_record_consent(collector: Collector, settings: Settings) -> None:
    # A key in a web page is public: without --consent anybody could grant consent for anybody.
    events_only = create_key("page", "--origin", "https://blog.example")
    wait_for_status(lambda: collector.post("/v1/events", json.dumps(event()).encode(), events_only), 202)
    assert_error(collector.post("/v1/consent", consent(), events_only), 403, "consent_not_allowed")
    assert query(settings, "SELECT count(*) FROM consent_ledger") == [(0,)]


def test_consent_errors_are_json(collector: Collector, write_key: str, settings: Settings) -> None:
    assert_error(collector.post("/v1/consent", consent("not-a-uuid"), write_key), 422, "invalid_user_id")
    assert_error(collector.post("/v1/consent", consent(purpose="Not Valid"), write_key), 422, "invalid_purpose")
    assert_error(collector.post("/v1/consent", b'{"user_id": 1, "purpose": "analytics"}', write_key), 422, "missing_field")
    assert_error(collector.post("/v1/consent", b"{", write_key), 400, "malformed_json")
    nested = b'{"user_id": ' + b"[" * 1500 + b"]" * 1500 + b', "purpose": "analytics", "granted": true}'
    assert_error(collector.post("/v1/consent", nested, write_key), 400, "too_deep")
    assert_error(
        collector.post("/v1/consent", consent(), write_key, content_type="application/x-ndjson"), 415, "unsupported_media_type"
    )
    assert_error(collector.post("/v1/consent", consent(), None), 401, "missing_write_key")
    assert_error(collector.post("/v1/consent", b" " * 5000, write_key), 413, "body_too_large")
    assert_error(collector.post("/v1/consent", consent(), write_key, Origin="https://evil.example"), 403, "origin_not_allowed")
    assert query(settings, "SELECT count(*) FROM consent_ledger") == [(0,)]


def test_without_the_database_consent_is_503_and_events_flow_on_known_keys(
    settings: Settings, write_key: str, tmp_path: Path
) -> None:
    url = urlsplit(settings.database.url)
    assert url.hostname is not None and url.port is not None
    proxy = TcpProxy(url.hostname, url.port)
    proxied = urlunsplit(url._replace(netloc=url.netloc.replace(f"{url.hostname}:{url.port}", f"127.0.0.1:{proxy.port}")))
    running = start_collector(tmp_path, env={"DATABASE_URL": proxied})
    try:
        assert running.post("/v1/consent", consent(), write_key).status_code == 201

        proxy.cut()
        refused = wait_for_status(lambda: running.post("/v1/consent", consent(), write_key), 503)
        assert_error(refused, 503, "database_unavailable")
        assert refused.headers["retry-after"] == str(settings.collector.retry_after_s)

        ready = running.http.get("/readyz")
        assert_error(ready, 503, "not_ready")
        assert ready.json()["broker"] == "ok" and ready.json()["database"].startswith("down")

        wait_until(lambda: "cannot reload the write keys" in running.output(), timeout=10, what="the reload failure in the log")
        for _ in range(3):  # several reloads fail meanwhile: the known key still works
            assert running.post("/v1/events", json.dumps(event()).encode(), write_key).status_code == 202
            assert running.post("/v1/consent", consent(), write_key).status_code == 503
    finally:
        code = running.stop()
    assert code == 0, running.output()
    assert running.output().count("cannot reload the write keys") == 1  # logged once, not every 0.2 s
    assert query(settings, "SELECT count(*) FROM consent_ledger") == [(1,)]
