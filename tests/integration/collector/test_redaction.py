"""Issue 26: the topic holds no personal data (the collector redacts with the one redactor before
it produces), and an event whose metadata would cost the redactor more than its bounds is 413."""

from __future__ import annotations

import json

import pytest

from core.config import Settings
from tests.integration.collector.conftest import Collector, assert_error, event
from tests.integration.collector.test_events import topic_messages

pytestmark = pytest.mark.integration


def test_the_topic_holds_the_metadata_redacted_and_clean_events_as_sent(
    collector: Collector, write_key: str, settings: Settings
) -> None:
    personal = event(
        event_type="purchase",
        amount="19.99",
        metadata={
            "page": "/checkout",
            "customer_name": "Jane Doe",
            "billing": {"first": "Jane", "last": "Doe"},
            "email": "jane.doe@example.com",
            "note": "call +49 30 1234567 or write to jane%40example.org",
        },
    )
    clean = json.dumps(event(), indent=2).encode()
    body = b"[" + json.dumps(personal).encode() + b"," + clean + b"]"

    response = collector.post("/v1/events", body, write_key)

    assert response.status_code == 202, response.text
    stored = {json.loads(value)["event_id"]: value for _, value in topic_messages(settings, 2)}
    sent = stored[personal["event_id"]]
    for word in (b"Jane", b"Doe", b"example", b"1234567"):
        assert word not in sent
    assert json.loads(sent) == {
        **personal,
        "metadata": {
            "page": "/checkout",
            "customer_name": "[redacted]",
            "billing": {"first": "[redacted]", "last": "[redacted]"},
            "email": "[redacted]",
            "note": "call [redacted-phone] or write to [redacted-email]",
        },
    }
    assert stored[json.loads(clean)["event_id"]] == clean  # nothing to redact: the bytes as sent


def test_metadata_over_a_bound_is_413_too_large(collector: Collector, write_key: str) -> None:
    """Issue 26 item 3: thousands of phone-shaped values in one event were accepted and cost the raw
    consumer seconds each; now the request is refused before anything is produced."""
    attack = event(metadata={f"p{i}": f"+49 30 {1_000_000 + i}" for i in range(1_500)})
    body = json.dumps([event(), attack]).encode()

    response = collector.post("/v1/events", body, write_key)

    assert_error(response, 413, "too_large")
    assert "event 1" in response.json()["detail"]
    long_string = event(metadata={"note": "x" * 5_000})
    assert_error(collector.post("/v1/events", json.dumps(long_string).encode(), write_key), 413, "too_large")
