"""Issue 26 items 3 and 7 at the consumers: an event over a metadata bound written straight to the
topic (past the collector's 413) is a dead letter ``too_large`` for both consumers while the rest
of its batch is stored and counted; and events a producer writes straight to the topic, which no
collector redacted, are stored redacted by the same rules the collector applies."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from core.config import MetadataLimits, Settings
from core.events import Event, user_uuid
from core.sink.consumer import TOO_LARGE_REASON, event_payload
from tests.helpers import consume_all, expected_metrics, known_events, metrics_table, produce, query

pytestmark = pytest.mark.integration

PLANTED_EMAIL = "too.large@example.com"


def test_an_event_over_a_metadata_bound_is_a_dead_letter_for_both_consumers(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """One purchase with more values than METADATA_MAX_VALUES allows (phone-shaped, each costing
    the redactor library checks), among ordinary events: the raw sink dead-letters it with reason
    ``too_large`` and a redacted payload, the streaming consumer counts it as a dead letter and not
    in the day's totals, and every other event of the batch is stored and counted once."""
    today = datetime.now(UTC).date()
    valid = known_events(500, seed=61, days=[today])
    limits = MetadataLimits()
    [template] = known_events(1, seed=67, days=[today])
    too_many = {f"p{i}": f"+49 30 {1_000_000 + i}" for i in range(limits.max_values + 1)}
    over = msgspec.structs.replace(
        template, event_type="purchase", amount=Decimal("123.45"), metadata={"email": PLANTED_EMAIL, **too_many}
    )
    too_long = msgspec.structs.replace(
        known_events(1, seed=71, days=[today])[0],
        event_type="purchase",
        amount=Decimal("9.99"),
        metadata={"note": "x" * (limits.max_string_chars + 1)},
    )
    messages = [(e.key, event_payload(e)) for e in valid] + [
        (over.key, event_payload(over)),
        (too_long.key, event_payload(too_long)),
    ]
    random.Random(73).shuffle(messages)
    produce(settings, messages)

    consume_all(settings, group, tmp_path)

    [(stored, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    assert stored == distinct == len(valid)
    assert query(settings, "SELECT count(*) FROM events_raw WHERE event_id IN (%s, %s)", (over.event_id, too_long.event_id)) == [
        (0,)
    ]
    dead = query(settings, "SELECT consumer_group, reason, detail, payload FROM dead_letter_events ORDER BY detail")
    assert [(g, reason) for g, reason, _detail, _payload in dead] == [(f"raw-{group}", TOO_LARGE_REASON)] * 2
    details = sorted(str(detail) for _g, _r, detail, _p in dead)
    assert "at most 128 are accepted" in details[0] and "keys and values" in details[0]
    assert "characters" in details[1]
    assert not any(PLANTED_EMAIL in str(payload) for *_rest, payload in dead)
    # The streaming consumer skips the dead letters (the raw sink records them) but counts them
    # in its bookkeeping, and its totals are the valid events' alone.
    assert metrics_table(settings, "metrics_streaming_daily") == expected_metrics(valid)
    batches = dict(query(settings, "SELECT consumer_group, sum(dead_letters) FROM consumer_batches GROUP BY consumer_group"))
    assert batches == {f"raw-{group}": 2, f"stream-{group}": 2}


def test_events_written_straight_to_the_topic_are_stored_redacted_as_the_collector_would_send_them(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """A producer that bypasses the collector (the generator, another service) writes personal data
    to the topic: the raw sink redacts it with the collector's rules (key names, nested parts of a
    name, URL-encoded and spelled emails, dotted cards, dashed IBANs), and an event the collector
    already redacted is stored as it came, its markers counted again."""
    now = datetime.now(UTC)
    personal = {
        "page": "/checkout",
        "customer_name": "Jane Doe",
        "billing": {"first": "Jane", "last": "Doe"},
        "E-Mail": "jane.doe@example.com",
        "note": "call +49 30 1234567 or write to jane%40example.org",
        "remark": "or jane (at) example (dot) net, card 4111.1111.1111.1111, iban DE89-3704-0044-0532-0130-00",
    }
    redacted = {
        "page": "/checkout",
        "customer_name": "[redacted]",
        "billing": {"first": "[redacted]", "last": "[redacted]"},
        "E-Mail": "[redacted]",
        "note": "call [redacted-phone] or write to [redacted-email]",
        "remark": "or [redacted-email], card [redacted-card], iban [redacted-iban]",
    }
    direct = Event("0b8a2c53-0000-4000-8000-000000000001", user_uuid(1), "page_view", now, None, personal)
    from_collector = Event("0b8a2c53-0000-4000-8000-000000000002", user_uuid(2), "page_view", now, None, redacted)
    clean = Event(
        "0b8a2c53-0000-4000-8000-000000000003", user_uuid(3), "page_view", now, None, {"page": "/p", "order": 4930123456}
    )
    produce(settings, [(e.key, event_payload(e)) for e in (direct, from_collector, clean)])

    consume_all(settings, group, tmp_path)

    stored = dict(query(settings, "SELECT event_id::text, metadata FROM events_raw"))
    assert stored == {direct.event_id: redacted, from_collector.event_id: redacted, clean.event_id: clean.metadata}
    text = json.dumps(list(stored.values()))
    for word in ("Jane", "Doe", "example", "1234567", "4111", "3704"):
        assert word not in text
    # Each event's removals counted: 4 by key (the name, its two parts, the email) and 5 by value.
    kinds = {"key": 4, "phone": 1, "email": 2, "card": 1, "iban": 1}
    assert dict(query(settings, "SELECT kind, redactions FROM ingest_redactions")) == {k: 2 * n for k, n in kinds.items()}
