"""Whatever a producer puts in a message's Kafka metadata (timestamp, key, headers) or payload,
both consumers keep going and count every message once: nothing of it reaches SQL unchecked."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

from core import kafka
from core.config import Settings
from core.events import EARLIEST_EVENT
from tests.helpers import (
    RAW,
    STREAMING,
    expected_metrics,
    known_events,
    metrics_table,
    query,
    run_command,
    start_service,
    wait_caught_up,
)

pytestmark = pytest.mark.integration

# Producer-set timestamps (ms) at and beyond every limit: PostgreSQL's timestamptz ends in
# 294276 AD (9.2e15 ms), Python's datetime in 9999 AD; -1 is Kafka's "no timestamp", and 0 makes
# librdkafka stamp the message with the current time.
TIMESTAMPS = [9 * 10**18, 2**63 - 1, 9_300_000_000_000_000, 253_402_300_800_000, -1, -2, -(9 * 10**18), 1, 0]


def test_kafka_metadata_extremes_neither_stop_nor_miscount_either_consumer(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    events = known_events(40, seed=53, days=[today])
    messages: list[dict[str, Any]] = []
    # One valid event per extreme timestamp.
    for stamp, event in zip(TIMESTAMPS, events, strict=False):
        messages.append({"key": event.key, "value": event.to_json(), "timestamp": stamp})
    rest = iter(events[len(TIMESTAMPS) :])
    # Keys: none, empty, binary (NUL, invalid UTF-8), and half a megabyte.
    for key in (None, b"", b"\x00\xff\xfe" * 50, b"\xc3\x28", b"k" * 500_000):
        messages.append({"key": key, "value": next(rest).to_json()})
    # Headers: NUL and invalid UTF-8 in names and values, a null value, many of them.
    headers = [("h\x00", b"\xff\x00"), ("\xff\u202e", None)]
    headers += [(f"n{i}", b"\x00" * 100) for i in range(200)]
    for _ in range(3):
        messages.append({"key": None, "value": next(rest).to_json(), "headers": headers})
    # Strings at the edges of what is valid: control characters, non-characters, the last code
    # point, right-to-left marks (all stored as they are).
    edgy = {"text": "\x01\x1f\x7f\ufffe\uffff\U0010ffff\u202e", "\u202ekey": "v"}
    valid = [*events[: len(TIMESTAMPS) + 8]]
    for event in list(rest)[:5]:
        body = json.loads(event.to_json())
        body["metadata"] = edgy
        messages.append({"key": event.key, "value": json.dumps(body).encode(), "timestamp": 9 * 10**18})
        valid.append(event)

    # Payloads PostgreSQL could not hold or that are not events at all: dead letters.
    def payload(metadata: str) -> bytes:
        body = {"event_id": str(uuid.uuid4()), "user_id": 7, "event_type": "page_view", "event_timestamp": f"{today}T12:00:00Z"}
        return json.dumps(body).encode()[:-1] + b', "metadata": ' + metadata.encode() + b"}"

    invalid = [
        (payload('{"a": "x\\u0000y"}'), "invalid_characters"),
        (payload('{"a": "x\x00y"}'), "not_json"),  # a raw NUL byte in a string
        (payload('{"a": "\\ud800"}'), "not_json"),  # a lone surrogate
        (b"\x00" * 64, "not_json"),
        (b"", "not_json"),
        (None, "empty_payload"),
    ]
    for value, _reason in invalid:
        messages.append({"key": b"\xff\x00", "value": value, "timestamp": 2**63 - 1, "headers": headers[:2]})

    sent = produce_raw(settings, messages)

    raw = start_service(RAW, f"raw-{group}", tmp_path)
    streaming = start_service(STREAMING, f"stream-{group}", tmp_path)
    try:
        wait_caught_up(settings, f"raw-{group}")
        wait_caught_up(settings, f"stream-{group}")
        assert raw.process.poll() is None, raw.output()
        assert streaming.process.poll() is None, streaming.output()
    finally:
        assert raw.stop() == 0, raw.output()
        assert streaming.stop() == 0, streaming.output()

    [(stored, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    assert stored == distinct == len(valid)
    reasons: dict[str, int] = {}
    for _value, reason in invalid:
        reasons[reason] = reasons.get(reason, 0) + 1
    assert dict(query(settings, "SELECT reason, count(*) FROM dead_letter_events GROUP BY reason")) == reasons
    assert stored + sum(reasons.values()) == sent
    assert metrics_table(settings, "metrics_streaming_daily") == expected_metrics(valid)
    [(kept,)] = query(settings, "SELECT count(*) FROM events_raw WHERE metadata->>'text' = %s", (edgy["text"],))
    assert kept == 5
    # Freshness was worked out from plausible timestamps only.
    [(oldest, newest)] = query(settings, "SELECT min(oldest_event_at), max(newest_event_at) FROM consumer_batches")
    assert oldest >= EARLIEST_EVENT
    assert newest <= datetime.now(UTC) + timedelta(days=1)
    status = run_command("consumers.status")
    assert status.returncode == 0, status.stderr
    assert f"raw-{group}: not running; lag 0" in status.stdout
    assert "Traceback" not in raw.output() + streaming.output()


def produce_raw(settings: Settings, messages: list[dict[str, Any]]) -> int:
    """Send each message with the metadata as given (timestamp, key, headers), with a real
    producer, and wait until all are acknowledged; return how many."""
    producer = kafka.producer(settings.kafka)
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(str(error))

    for message in messages:
        producer.produce(settings.kafka.topic, on_delivery=delivered, **message)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not failures, failures
    return len(messages)
