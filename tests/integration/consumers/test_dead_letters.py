"""Thousands of mixed valid and invalid messages: valid ones stored once, invalid ones dead-lettered once."""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from core.config import Settings
from core.events import MAX_METADATA_DEPTH, MAX_PAYLOAD_BYTES
from core.sink.consumer import event_payload
from tests.helpers import (
    RAW,
    consume_all,
    expected_metrics,
    known_events,
    metrics_table,
    produce,
    produce_events,
    query,
    run_command,
    set_report_budget,
    start_service,
    wait_caught_up,
)

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
        (event(user_id="abc"), "invalid_user_id"),
        (event(user_id=[1]), "wrong_type"),
        (event(event_type="refund"), "unknown_event_type"),
        (event(amount="-5.00"), "negative_amount"),
        (event(amount="12,50"), "invalid_amount"),
        (event(event_timestamp="31/12/2026"), "invalid_timestamp"),
        (event(event_timestamp="1999-01-01T00:00:00+00:00"), "absurd_timestamp"),
        (event(metadata={"blob": "x" * MAX_PAYLOAD_BYTES}), "oversized_payload"),
        (event(metadata={"nul": "\u0000"}), "invalid_characters"),
        (b'{"event_id": "\xb8", "email": "' + PLANTED_EMAIL.encode() + b'"}', "not_json"),  # a string of invalid UTF-8
        (event(metadata=nested(MAX_METADATA_DEPTH + 1)), "too_deep"),
        # Valid JSON that Decimal refuses: once a crash of both consumers, parsing and redacting.
        (event(metadata={"email": PLANTED_EMAIL, "x": "N"}).replace(b'"N"', b"1e-99999999999999999999"), "invalid_number"),
        (event(metadata=...)[:-1] + b', "metadata": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "too_deep"),
    ]


def nested(depth: int) -> dict[str, object]:
    """Metadata ``depth`` objects deep, with the planted email at the bottom."""
    value: dict[str, object] = {"email": PLANTED_EMAIL}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_mixed_stream_splits_exactly_into_events_and_dead_letters(settings: Settings, group: str, tmp_path: Path) -> None:
    rng = random.Random(99)
    valid = known_events(3_000, seed=23, days=[datetime.now(UTC).date()])
    kinds = invalid_payloads(rng)
    invalid = [kinds[i % len(kinds)] for i in range(1_200)]
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
    assert f"raw-{group}: not running; lag 0 (p0=0, p1=0, p2=0)" in status.stdout
    assert f"{len(invalid):,} dead letters" in status.stdout
    assert f"stream-{group}: not running; lag 0" in status.stdout
    rate = float(
        status.stdout.split(f"raw-{group}: not running; lag 0 (p0=0, p1=0, p2=0); ")[1].split(" events/s")[0].replace(",", "")
    )
    assert rate == pytest.approx(len(valid) / 60, rel=0.01)
    # Freshness: the events were produced moments ago, so they became visible within seconds;
    # the newest of the last batch no later than its oldest, the window's worst no better.
    found = re.search(rf"raw-{group}: .*freshness ([\d.]+)-([\d.]+) s \(last batch\), at most ([\d.]+) s", status.stdout)
    assert found, status.stdout
    best, worst, window = (float(x) for x in found.groups())
    assert 0 <= best <= worst <= window < 60

    set_report_budget(settings)
    report = run_command("reports.generate_daily_report")
    assert f"dead letters received this day): **{len(invalid):,}**" in report.stdout


def test_events_the_database_refuses_are_dead_lettered_and_ingestion_goes_on(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """Valid events can still be refused by PostgreSQL, for any reason: here a check constraint the
    test adds (the parser now refuses the numbers jsonb cannot hold before they reach it, and
    what else PostgreSQL would refuse is held to bounds). The batch is bisected, the refused
    events are dead-lettered with the database's reason, the rest is stored once, and the
    consumer keeps running. Phone-like numbers in metadata (order ids) stay valid JSON whatever
    the redactor makes of them."""
    today = datetime.now(UTC).date()
    valid = known_events(2_000, seed=31, days=[today])
    numbered = [
        msgspec.structs.replace(e, metadata={"order": 4930123456 + i, "product_id": 1234567, "page": "/p"})
        for i, e in enumerate(known_events(300, seed=37, days=[today]))
    ]
    refused = [msgspec.structs.replace(e, metadata={"refuse": "yes"}) for e in known_events(7, seed=41, days=[today])]
    query(settings, "ALTER TABLE events_raw ADD CONSTRAINT test_refused CHECK (metadata->>'refuse' IS NULL)")
    messages = [(e.key, event_payload(e)) for e in valid + numbered + refused]
    random.Random(43).shuffle(messages)
    raw = start_service(RAW, f"raw-{group}", tmp_path, {"SINK_BATCH_SIZE": "500"})
    try:
        produce(settings, messages)
        wait_caught_up(settings, f"raw-{group}")
        assert raw.process.poll() is None, raw.output()
        # Still consuming after the refusals: a later valid event is stored too.
        later = known_events(1, seed=47, days=[today])
        produce_events(settings, later)
        wait_caught_up(settings, f"raw-{group}")
        assert raw.process.poll() is None, raw.output()
    finally:
        query(settings, "ALTER TABLE events_raw DROP CONSTRAINT test_refused")
        assert raw.stop() == 0, raw.output()
    [(stored, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    dead = query(settings, "SELECT reason, detail, payload FROM dead_letter_events")
    assert stored == distinct == len(valid) + len(numbered) + len(later)
    assert len(dead) == len(refused)
    assert stored + len(dead) == len(messages) + len(later)
    assert {(reason, detail) for reason, detail, _payload in dead} == {
        ("refused_by_database", "23514: check_violation (test_refused)")
    }
    assert {str(row[0]) for row in query(settings, "SELECT event_id FROM events_raw")}.isdisjoint(e.event_id for e in refused)
    # Metadata is stored as JSON objects; an order id is a number or a redaction marker string.
    orders = query(settings, "SELECT jsonb_typeof(metadata->'order') FROM events_raw WHERE metadata ? 'order'")
    assert len(orders) == len(numbered)
    assert {kind for (kind,) in orders} <= {"number", "string"}
    assert "Traceback" not in raw.output()
