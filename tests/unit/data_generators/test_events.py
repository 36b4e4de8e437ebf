"""The generator's events: the 70/20/10 mix, valid on the fast path, backfilled along the daily curve."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from core.events import parse_event
from data_generators.events import EVENT_MIX, HOURLY_TRAFFIC, EventFactory

USERS = [str(uuid.UUID(int=n, version=4)) for n in range(1, 101)]


def test_event_mix_is_roughly_70_20_10_and_only_purchases_carry_amounts() -> None:
    factory = EventFactory(USERS[:3], seed=1)
    events = [factory.make(datetime(2026, 1, 1, tzinfo=UTC)) for _ in range(20_000)]
    share = {kind: sum(e.event_type == kind for e in events) / len(events) for kind in EVENT_MIX}
    assert abs(share["page_view"] - 0.7) < 0.02 and abs(share["add_to_cart"] - 0.2) < 0.02 and abs(share["purchase"] - 0.1) < 0.02
    assert all((e.amount is not None) == (e.event_type == "purchase") for e in events)
    assert all(e.amount is None or e.amount == e.amount.quantize(Decimal("0.01")) for e in events)
    assert {e.user_id for e in events} == set(USERS[:3])
    assert len({e.event_id for e in events}) == len(events)


def test_fast_messages_are_valid_events_with_the_same_mix() -> None:
    factory = EventFactory(USERS, seed=2)
    now = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    messages = factory.messages(20_000, now)
    events = [parse_event(m["value"], now=now) for m in messages]
    assert all(m["key"] == e.user_id.encode() for m, e in zip(messages, events, strict=True))
    assert all(e.event_timestamp == now and uuid.UUID(e.event_id).version == 7 for e in events)
    assert len({e.event_id for e in events}) == len(events)
    share = {kind: sum(e.event_type == kind for e in events) / len(events) for kind in EVENT_MIX}
    assert abs(share["page_view"] - 0.7) < 0.02 and abs(share["purchase"] - 0.1) < 0.02
    purchases = [e.amount for e in events if e.event_type == "purchase"]
    assert purchases and all(a is not None and Decimal("5.00") <= a <= Decimal("500.00") for a in purchases)
    assert all(e.amount is None for e in events if e.event_type != "purchase")
    assert {e.user_id for e in events} <= set(USERS)


def test_backfill_moments_lie_in_the_window_and_follow_the_traffic_curve() -> None:
    factory = EventFactory(USERS[:3], seed=4)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    moments = [factory.backfill_time(now, 14) for _ in range(20_000)]
    assert all(now - timedelta(days=14) <= m <= now for m in moments)
    by_hour = [sum(m.hour == h for m in moments) for h in range(24)]
    # Busiest hour (weight 10) against the quietest (weight 1): about ten times the events.
    assert 6 < by_hour[HOURLY_TRAFFIC.index(10)] / by_hour[HOURLY_TRAFFIC.index(1)] < 15
