"""What a requester is shown of their request (no database: a request row as read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.config import DatabaseSettings, KafkaSettings, Settings, SinkSettings
from gdpr.api.service import PrivacyApi
from gdpr.api.store import LOGIN
from gdpr.requests import ApiRequest as Request

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(
    database=DatabaseSettings(url="postgresql://u:p@127.0.0.1:1/db", statement_timeout_ms=1000),
    kafka=KafkaSettings(bootstrap_servers="localhost:9092", topic="t", partitions=1),
    sink=SinkSettings(batch_size=1, batch_seconds=1.0),
    reports_dir=Path("reports"),
    log_level="INFO",
    access_export_days=7,
    hmac_key_text="unit-test-key",
)
API = PrivacyApi(SETTINGS, LOGIN.open(SETTINGS.database))  # never connects here


def request(**changes: object) -> Request:
    fields: dict[str, object] = {
        "id": 5,
        "request_type": "erasure",
        "status": "pending",
        "outcome": None,
        "secret_hash": "0" * 64,
        "requested_at": NOW - timedelta(days=2),
        "due_at": NOW + timedelta(days=28, hours=1),
        "processed_at": None,
        "verified_at": NOW,
        "export_path": None,
        "export_expires_at": None,
        "export_downloaded_at": None,
    }
    fields.update(changes)
    return Request(**fields)  # type: ignore[arg-type]


def test_an_open_request_counts_its_days_left() -> None:
    shown = API.describe(request(), NOW)
    assert (shown["status"], shown["days_left"], shown["overdue"], shown["export"]) == ("pending", 29, False, None)
    assert shown["due_at"] == (NOW + timedelta(days=28, hours=1)).isoformat()
    assert "secret_hash" not in shown
    late = API.describe(request(due_at=NOW - timedelta(days=1)), NOW)
    assert (late["days_left"], late["overdue"]) == (0, True)


def test_a_closed_request_has_no_days_left() -> None:
    shown = API.describe(request(status="completed", processed_at=NOW, outcome="personal data erased"), NOW)
    assert (shown["days_left"], shown["overdue"], shown["outcome"]) == (None, False, "personal data erased")


def test_an_access_export_is_available_until_it_expires_or_is_downloaded() -> None:
    done = {"request_type": "access", "status": "completed", "processed_at": NOW - timedelta(days=1)}
    ready = API.describe(request(**done, export_path="/x/access_request_5.json", export_expires_at=NOW + timedelta(days=6)), NOW)
    assert ready["export"] == {
        "available": True,
        "expires_at": (NOW + timedelta(days=6)).isoformat(),
        "downloaded_at": None,
        "url": "/v1/privacy-requests/5/export",
    }
    # A processor that set no expiry: ACCESS_EXPORT_DAYS after it was made.
    unset = API.describe(request(**done, export_path="/x/access_request_5.json"), NOW)
    assert unset["export"]["expires_at"] == (NOW + timedelta(days=6)).isoformat()
    downloaded = API.describe(request(**done, export_downloaded_at=NOW, export_expires_at=NOW + timedelta(days=6)), NOW)
    assert downloaded["export"]["available"] is False and downloaded["export"]["downloaded_at"] == NOW.isoformat()
    expired = API.describe(request(**done, export_path="/x/access_request_5.json", export_expires_at=NOW), NOW)
    assert expired["export"]["available"] is False
