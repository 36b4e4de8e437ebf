"""Event validation: every valid event parses exactly; every invalid kind has its own reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core import events as events_module
from core.events import MAX_METADATA_DEPTH, MAX_PAYLOAD_BYTES, Event, InvalidEvent, parse_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def body(**changes: object) -> bytes:
    event: dict[str, object] = {
        "event_id": "5b7c5a52-6d3e-4a57-9a0e-0d3c2b1f8e11",
        "user_id": 42,
        "event_type": "purchase",
        "event_timestamp": "2026-11-21T23:59:59.5+00:00",
        "amount": "19.99",
        "metadata": {"page": "/checkout"},
    }
    for key, value in changes.items():
        if value is ...:
            event.pop(key)
        else:
            event[key] = value
    return json.dumps(event).encode()


def nested(depth: int) -> dict[str, object]:
    """An object ``depth`` levels deep."""
    value: dict[str, object] = {"leaf": "x"}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_round_trip_keeps_money_exact_and_day_in_utc() -> None:
    event = Event(
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        "purchase",
        datetime(2026, 1, 1, 0, 30, tzinfo=UTC) + timedelta(hours=-1),
        Decimal("0.10"),
        {},
    )
    parsed = parse_event(event.to_json(), now=NOW)
    assert parsed == event
    assert parsed.amount == Decimal("0.10") and isinstance(parsed.amount, Decimal)
    assert parsed.event_date.isoformat() == "2025-12-31"
    assert event.key == event.user_id.encode()


def test_the_designs_event_format_is_read_exactly() -> None:
    """UUID user ids in any case are stored canonical; a numeric user id (the platform's format
    before UUIDs) is the UUID of its number; amounts are exact from their digits; a zero amount
    on a page view is kept as sent (never revenue: it is zero), a null stays null."""
    design = parse_event(body(user_id="9F1C2B3A-0D4E-4F5A-8B6C-7D8E9FA0B1C2", amount=57.31), now=NOW)
    assert design.user_id == "9f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2" and design.amount == Decimal("57.31")
    assert parse_event(body(user_id=42), now=NOW).user_id == "00000000-0000-0000-0000-00000000002a"
    assert parse_event(body(event_type="page_view", amount=0.0), now=NOW).amount == Decimal("0.00")
    assert parse_event(body(event_type="page_view", amount=None), now=NOW).amount is None


def test_numeric_amount_is_read_as_decimal_not_float() -> None:
    parsed = parse_event(b'{"event_id":"5b7c5a52-6d3e-4a57-9a0e-0d3c2b1f8e11","user_id":1,"event_type":"purchase",'
                         b'"event_timestamp":"2026-11-21T10:00:00Z","amount":0.1}', now=NOW)  # fmt: skip
    assert parsed.amount == Decimal("0.10")


def test_timestamp_with_offset_is_counted_on_its_utc_day() -> None:
    parsed = parse_event(body(event_timestamp="2026-11-22T00:30:00+02:00"), now=NOW)
    assert parsed.event_date.isoformat() == "2026-11-21"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x00\xff\xfe garbage", "not_json"),
        (b"", "not_json"),
        (b'"\xb8\x01 a string of invalid UTF-8', "not_json"),
        (b'{"event_id": "\xb8"}', "not_json"),
        (b"[1, 2]", "not_an_object"),
        (body(event_id=...), "missing_field"),
        (body(user_id=None), "missing_field"),
        (body(event_id=12), "wrong_type"),
        (body(event_id="not-a-uuid"), "invalid_event_id"),
        (body(user_id="42"), "invalid_user_id"),
        (body(user_id="5b7c5a52-6d3e-4a57-9a0e-0d3c2b1f8e1"), "invalid_user_id"),
        (body(user_id=42.0), "wrong_type"),
        (body(event_type="page_view", amount=3.5), "unexpected_amount"),
        (body(event_type="add_to_cart", amount="0.01"), "unexpected_amount"),
        (body(event_type="page_view", amount=-0.5), "negative_amount"),
        (body(user_id=True), "wrong_type"),
        (body(user_id=-1), "invalid_user_id"),
        (body(event_type="refund"), "unknown_event_type"),
        (body(event_type=["purchase"]), "wrong_type"),
        (body(amount="-1.00"), "negative_amount"),
        (body(amount="ten euros"), "invalid_amount"),
        (body(amount="NaN"), "invalid_amount"),
        (body(amount="1.001"), "invalid_amount"),
        (body(amount=...), "missing_field"),
        (body(event_type="page_view"), "unexpected_amount"),
        (body(event_timestamp="yesterday"), "invalid_timestamp"),
        (body(event_timestamp="2026-11-21T10:00:00"), "invalid_timestamp"),
        (body(event_timestamp="1970-01-01T00:00:00+00:00"), "absurd_timestamp"),
        (body(event_timestamp="2099-01-01T00:00:00+00:00"), "absurd_timestamp"),
        (body(event_timestamp=1700000000), "wrong_type"),
        (body(metadata="x"), "wrong_type"),
        (body(metadata={"note": "\u0000"}), "invalid_characters"),
        (body(metadata={"blob": "x" * MAX_PAYLOAD_BYTES}), "oversized_payload"),
        (None, "empty_payload"),
        (body(metadata=nested(MAX_METADATA_DEPTH + 1)), "too_deep"),
        (body(metadata=[nested(MAX_METADATA_DEPTH)]), "wrong_type"),
        (body(metadata=...)[:-1] + b', "metadata": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "too_deep"),
        (body(metadata=...)[:-1] + b', "metadata": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}", "too_deep"),
        (b"[" * 5_000 + b"]" * 5_000, "too_deep"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(payload: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload, now=NOW)
    assert caught.value.reason == reason


def test_metadata_as_deep_as_allowed_is_accepted() -> None:
    """The limit counts the metadata object as level 1; brackets inside strings do not count."""
    assert parse_event(body(metadata=nested(MAX_METADATA_DEPTH)), now=NOW).metadata == nested(MAX_METADATA_DEPTH)
    flat = {"note": "[" * 100 + "{" * 100}
    assert parse_event(body(metadata=flat), now=NOW).metadata == flat


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"event_id": "5B7C5A52-6D3E-4A57-9A0E-0D3C2B1F8E11"},
        {"event_timestamp": "2026-11-21T23:59:59.9999999+00:00"},  # seven digits: truncated, same day
        {"event_timestamp": "2026-11-22T01:00:00+02:00"},
        {"event_timestamp": "2026-11-21 10:00:00+00:00"},  # not RFC 3339, still ISO 8601
        {"amount": 12.5},
        {"amount": "1e2"},
        {"amount": 7},
        {"metadata": None},
        {"metadata": ...},
        {"extra": {"ignored": True}},
        {"event_type": "page_view", "amount": None},
        {"event_type": "page_view", "amount": 0.0},  # the design's generator: amount 0.0 on every event
        {"event_type": "add_to_cart", "amount": 0},
        {"user_id": "9F1C2B3A-0D4E-4F5A-8B6C-7D8E9FA0B1C2", "amount": 57.31},
    ],
)
def test_fast_and_thorough_paths_read_a_valid_event_identically(changes: dict[str, object]) -> None:
    """The C-checked fast path and the field-by-field path must give one reading of each event."""
    payload = body(**changes)
    fast = parse_event(payload, now=NOW)
    thorough = events_module._parse_slowly(payload, NOW)
    assert fast == thorough
    assert fast.event_timestamp.tzinfo is UTC and fast.event_id == fast.event_id.lower()
    assert fast.user_id == fast.user_id.lower() and uuid.UUID(fast.user_id)
    assert fast.event_date.isoformat() in ("2026-11-21", "2026-11-22")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"user_id": 2**63}, "invalid_user_id"),
        ({"amount": "NaN"}, "invalid_amount"),
        ({"amount": "1.001"}, "invalid_amount"),
        ({"event_type": "page_view"}, "unexpected_amount"),
        ({"event_timestamp": "2026-11-21T10:00:00"}, "invalid_timestamp"),
        ({"event_timestamp": "1999-12-31T23:59:59Z"}, "absurd_timestamp"),
    ],
)
def test_fast_path_applies_the_same_range_checks(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body(**changes), now=NOW)
    assert caught.value.reason == reason


@pytest.mark.parametrize("amount", ["1000000.01", "9999999999.99", "10000000000.00", 1e300, "1e400"])
def test_an_amount_above_the_maximum_per_event_is_out_of_range(amount: object) -> None:
    """MAX_EVENT_AMOUNT (Settings.max_event_amount, 1,000,000.00 by default) bounds each event, so
    a day's totals cannot overflow; above what events_raw holds nothing is ever accepted."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body(amount=amount), now=NOW, max_amount=Decimal("1000000.00"))
    assert caught.value.reason == "amount_out_of_range"
    with pytest.raises(InvalidEvent) as slow:
        events_module._parse_slowly(body(amount=amount), NOW, Decimal("1000000.00"))
    assert slow.value.reason == "amount_out_of_range"
    assert parse_event(body(amount="1000000.00"), now=NOW, max_amount=Decimal("1000000.00")).amount == Decimal("1000000.00")


def test_without_a_maximum_only_what_events_raw_holds_is_accepted() -> None:
    assert parse_event(body(amount="9999999999.99"), now=NOW).amount == Decimal("9999999999.99")
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body(amount="10000000000"), now=NOW)
    assert caught.value.reason == "amount_out_of_range"


OUT_OF_RANGE = [b"1e-99999999999999999999", b"1e99999999999999999999", b"-1E+400", b"1e-400", b"0E-5000", b"0." + b"1" * 400]


@pytest.mark.parametrize("number", [*OUT_OF_RANGE, b"1" * 5000])
@pytest.mark.parametrize("field", ["metadata", "event_type"])
def test_a_number_out_of_range_rejects_its_event_with_a_reason(number: bytes, field: str) -> None:
    """Decimal refuses some (an exponent past its own range), PostgreSQL or a browser others: each
    is that event's InvalidEvent, on the fast and the slow path, never another exception."""
    payload = body(**{field: {"x": "N"} if field == "metadata" else "N"}).replace(b'"N"', number)
    with pytest.raises(InvalidEvent) as caught:
        parse_event(payload, now=NOW)
    assert caught.value.reason == "invalid_number"


@pytest.mark.parametrize(
    ("number", "reason"),
    [(b"1e-99999999999999999999", "invalid_number"), (b"1e99999999999999999999", "invalid_number"),
     (b"-1E+400", "negative_amount"), (b"1e400", "amount_out_of_range"), (b"1e-400", "invalid_amount")],
)  # fmt: skip
def test_an_amount_out_of_range_rejects_its_event_with_a_reason(number: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body(amount="N").replace(b'"N"', number), now=NOW)
    assert caught.value.reason == reason


def test_numbers_in_a_doubles_range_are_kept_exact() -> None:
    numbers = b'{"big": 1e308, "small": -4.9e-324, "zero": 0.0, "long": 3.14159265358979323846264338327950288}'
    parsed = parse_event(body(metadata="M").replace(b'"M"', numbers), now=NOW)
    assert parsed.metadata == {
        "big": Decimal("1e308"),
        "small": Decimal("-4.9e-324"),
        "zero": Decimal("0.0"),
        "long": Decimal("3.14159265358979323846264338327950288"),
    }
