"""Pure logic without services: aggregation, erasure helpers, rendering, user generation."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from batch.reconcile import Comparison, render_table
from consumers.streaming_metrics import aggregate
from core.events import Event, parse_event
from core.sink import Consumed
from data_generators.events import EVENT_MIX, HOURLY_TRAFFIC, EventFactory
from data_generators.generate_users import build_pools, email_part, generate_rows
from gdpr.process_privacy_requests import RejectedRequest, email_hmac, normalise_email


def consumed(kind: str, when: datetime, amount: str | None = None) -> Consumed:
    return Consumed(Event(str(uuid.uuid4()), 1, kind, when, Decimal(amount) if amount else None, {}), 0, 0)


def test_aggregate_sums_per_utc_day_and_type_exactly() -> None:
    late = datetime(2026, 11, 21, 23, 59, tzinfo=UTC)
    today = datetime(2026, 11, 22, 0, 1, tzinfo=UTC)
    deltas = aggregate(
        [
            consumed("purchase", today, "0.10"),
            consumed("purchase", today, "0.20"),
            consumed("page_view", late),
            consumed("purchase", late, "5"),
        ]
    )
    assert deltas == {
        (date(2026, 11, 22), "purchase"): (2, Decimal("0.30")),
        (date(2026, 11, 21), "page_view"): (1, Decimal("0")),
        (date(2026, 11, 21), "purchase"): (1, Decimal("5")),
    }


def test_normalise_email_lowercases_and_rejects_garbage_and_look_alikes() -> None:
    assert normalise_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert normalise_email("o'brien+news@example.com") == "o'brien+news@example.com"
    bad = [
        None, "", "   ", "no-at-sign", "a@b", "x" * 250 + "@example.com", "a b@example.com", "a@@example.com",
        "'; DROP TABLE users_pii; --", "admin@ex\u0430mple.com",  # Cyrillic a
        "user\u200b@example.com", "user@example.com\u202e",
        "\uff55ser@example.com", "user@example.com\x00",
    ]  # fmt: skip
    for raw in bad:
        with pytest.raises(RejectedRequest):
            normalise_email(raw)


def test_email_hmac_is_keyed() -> None:
    assert email_hmac(b"k1", "a@example.com") == email_hmac(b"k1", "a@example.com")
    assert email_hmac(b"k1", "a@example.com") != email_hmac(b"k2", "a@example.com")
    assert "a@example.com" not in email_hmac(b"k1", "a@example.com")


def test_generated_users_are_reproducible_and_emails_unique() -> None:
    pools = build_pools(1)
    first = generate_rows(1, 2000, pools, 1, date(2026, 1, 1))
    assert first == generate_rows(1, 2000, pools, 1, date(2026, 1, 1))
    emails = [line.split(",")[1] for line in first[0].splitlines()]
    assert len(set(emails)) == 2000
    assert all(e.strip('"').endswith(("example.com", "example.org", "example.net")) for e in emails)
    assert email_part("Müller-Lüdenscheidt") == "mullerludenscheidt"


def test_event_mix_is_roughly_70_20_10_and_only_purchases_carry_amounts() -> None:
    factory = EventFactory([1, 2, 3], seed=1)
    events = [factory.make(datetime(2026, 1, 1, tzinfo=UTC)) for _ in range(20_000)]
    share = {kind: sum(e.event_type == kind for e in events) / len(events) for kind in EVENT_MIX}
    assert abs(share["page_view"] - 0.7) < 0.02 and abs(share["add_to_cart"] - 0.2) < 0.02 and abs(share["purchase"] - 0.1) < 0.02
    assert all((e.amount is not None) == (e.event_type == "purchase") for e in events)
    assert all(e.amount is None or e.amount == e.amount.quantize(Decimal("0.01")) for e in events)
    assert {e.user_id for e in events} == {1, 2, 3}
    assert len({e.event_id for e in events}) == len(events)


def test_comparison_table_shows_differences() -> None:
    rows = [
        Comparison("purchase", 2, Decimal("10.00"), 3, Decimal("12.50")),
        Comparison("page_view", 5, Decimal(0), 5, Decimal(0)),
    ]
    table = render_table(rows)
    assert "+1" in table and "+2.50" in table


def test_fast_messages_are_valid_events_with_the_same_mix() -> None:
    factory = EventFactory(list(range(1, 101)), seed=2)
    now = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    messages = factory.messages(20_000, now)
    events = [parse_event(m["value"], now=now) for m in messages]
    assert all(m["key"] == str(e.user_id).encode() for m, e in zip(messages, events, strict=True))
    assert all(e.event_timestamp == now and uuid.UUID(e.event_id).version == 7 for e in events)
    assert len({e.event_id for e in events}) == len(events)
    share = {kind: sum(e.event_type == kind for e in events) / len(events) for kind in EVENT_MIX}
    assert abs(share["page_view"] - 0.7) < 0.02 and abs(share["purchase"] - 0.1) < 0.02
    purchases = [e.amount for e in events if e.event_type == "purchase"]
    assert purchases and all(a is not None and Decimal("5.00") <= a <= Decimal("500.00") for a in purchases)
    assert all(e.amount is None for e in events if e.event_type != "purchase")
    assert {e.user_id for e in events} <= set(range(1, 101))


def test_backfill_moments_lie_in_the_window_and_follow_the_traffic_curve() -> None:
    factory = EventFactory([1, 2, 3], seed=4)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    moments = [factory.backfill_time(now, 14) for _ in range(20_000)]
    assert all(now - timedelta(days=14) <= m <= now for m in moments)
    by_hour = [sum(m.hour == h for m in moments) for h in range(24)]
    # Busiest hour (weight 10) against the quietest (weight 1): about ten times the events.
    assert 6 < by_hour[HOURLY_TRAFFIC.index(10)] / by_hour[HOURLY_TRAFFIC.index(1)] < 15
