"""Thousands of mixed valid and invalid messages: valid ones stored once, invalid ones dead-lettered once."""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import Settings
from core.events import MAX_PAYLOAD_BYTES
from tests.helpers import (
    consume_all,
    expected_metrics,
    metrics_table,
    produce,
    query,
    run_command,
)
from tests.integration.test_pipeline import known_events

pytestmark = pytest.mark.integration

PLANTED_EMAIL = "leak.me@example.com"


def invalid_payloads(rng: random.Random) -> list[tuple[bytes, str]]:
    """One of every invalid kind, with the reason the sink must give."""
    now = datetime.now(UTC).isoformat()

    def event(**changes: object) -> bytes:
        body: dict[str, object] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "user_id": 1,
            "event_type": "purchase",
            "event_timestamp": now,
            "amount": "9.99",
            "metadata": {"email": PLANTED_EMAIL},
        }
        body.update(changes)
        return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()

    return [
        (os.urandom(rng.randrange(1, 200)) + b"\xff", "not_json"),
        (b"{truncated", "not_json"),
        (b'"just a string"', "not_an_object"),
        (event(event_id=...), "missing_field"),
        (event(user_id="abc"), "wrong_type"),
        (event(event_type="refund"), "unknown_event_type"),
        (event(amount="-5.00"), "negative_amount"),
        (event(amount="12,50"), "invalid_amount"),
        (event(event_timestamp="31/12/2026"), "invalid_timestamp"),
        (event(event_timestamp="1999-01-01T00:00:00+00:00"), "absurd_timestamp"),
        (event(metadata={"blob": "x" * MAX_PAYLOAD_BYTES}), "oversized_payload"),
        (event(metadata={"nul": "\u0000"}), "invalid_characters"),
    ]


def test_mixed_stream_splits_exactly_into_events_and_dead_letters(settings: Settings, group: str, tmp_path: Path) -> None:
    rng = random.Random(99)
    valid = known_events(3_000, seed=23, days=[datetime.now(UTC).date()])
    invalid = [invalid_payloads(rng)[i % 12] for i in range(1_200)]
    messages = [(e.key, e.to_json(), None) for e in valid] + [(None, payload, reason) for payload, reason in invalid]
    rng.shuffle(messages)
    produce(settings, ((key, value) for key, value, _reason in messages))

    consume_all(settings, group, tmp_path)

    [(total, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    assert total == distinct == len(valid)
    dead = query(settings, "SELECT kafka_partition, kafka_offset, reason, payload FROM dead_letter_events")
    assert len(dead) == len(invalid) == len({(p, o) for p, o, _r, _pl in dead})
    expected_reasons: dict[str, int] = {}
    for _payload, reason in invalid:
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert dict(query(settings, "SELECT reason, count(*) FROM dead_letter_events GROUP BY reason")) == expected_reasons
    assert not any(PLANTED_EMAIL in str(payload) for *_rest, payload in dead)
    assert metrics_table(settings, "metrics_streaming_daily") == expected_metrics(valid)
    # Every message of the topic is accounted for exactly once: stored or dead-lettered.
    [(stored_rows,)] = query(settings, "SELECT count(*) FROM events_raw")
    assert stored_rows + len(dead) == len(messages)

    shown = run_command("consumers.dead_letters", "--show", "3")
    assert shown.returncode == 0
    assert f"dead letters: {len(invalid):,}" in shown.stdout
    assert f"not_json {expected_reasons['not_json']:>10,}".replace(" ", "") in shown.stdout.replace(" ", "")
    assert PLANTED_EMAIL not in shown.stdout

    status = run_command("consumers.status")
    assert status.returncode == 0, status.stderr
    assert f"raw-{group}: lag 0 (p0=0, p1=0, p2=0)" in status.stdout
    assert f"{len(invalid):,} dead letters" in status.stdout
    assert f"stream-{group}: lag 0" in status.stdout
    rate = float(status.stdout.split(f"raw-{group}: lag 0 (p0=0, p1=0, p2=0); ")[1].split(" events/s")[0].replace(",", ""))
    assert rate == pytest.approx(len(valid) / 60, rel=0.01)

    report = run_command("reports.generate_daily_report")
    assert f"dead letters received this day): **{len(invalid):,}**" in report.stdout
