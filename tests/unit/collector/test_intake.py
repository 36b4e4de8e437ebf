"""Per-event validation and the results a client gets back, in request order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from collector.intake import BROKER_UNAVAILABLE, Invalid, Valid, results, undelivered, validate

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
EVENT_ID = "5B7C5A52-6D3E-4A57-9A0E-0D3C2B1F8E11"


def event(**changes: object) -> bytes:
    body: dict[str, object] = {
        "event_id": EVENT_ID,
        "user_id": 42,
        "event_type": "page_view",
        "event_timestamp": "2026-11-22T11:00:00+00:00",
    }
    body.update(changes)
    return json.dumps(body, indent=1).encode()


def test_valid_events_keep_their_bytes_and_get_the_users_key() -> None:
    raw = event()
    [outcome] = validate([raw], NOW)
    assert outcome == Valid(EVENT_ID.lower(), b"00000000-0000-0000-0000-00000000002a", raw)


def test_each_invalid_event_gets_core_events_reason() -> None:
    outcomes = validate([b"not json", event(event_type="refund"), event(), b"[]"], NOW)
    assert [type(o).__name__ for o in outcomes] == ["Invalid", "Invalid", "Valid", "Invalid"]
    assert [o.reason for o in outcomes if isinstance(o, Invalid)] == ["not_json", "unknown_event_type", "not_an_object"]


def test_results_are_counts_and_one_entry_per_event_in_order() -> None:
    outcomes = [*validate([event(), b"{}"], NOW), undelivered("timed out")]
    assert results(outcomes) == {
        "accepted": 1,
        "rejected": 2,
        "results": [
            {"status": "accepted", "event_id": EVENT_ID.lower()},
            {"status": "rejected", "reason": "missing_field", "detail": "event_id"},
            {"status": "rejected", "reason": BROKER_UNAVAILABLE, "detail": "timed out"},
        ],
    }


def test_an_amount_above_the_maximum_is_a_rejected_event_as_in_the_consumers() -> None:
    purchase = {"event_type": "purchase"}
    outcomes = validate(
        [event(**purchase, amount="1000.01"), event(**purchase, amount="1000.00")], NOW, max_amount=Decimal("1000.00")
    )
    assert isinstance(outcomes[0], Invalid) and outcomes[0].reason == "amount_out_of_range"
    assert isinstance(outcomes[1], Valid)
