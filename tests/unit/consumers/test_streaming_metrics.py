"""The streaming consumer's aggregation: exact sums per UTC day and event type."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from consumers.streaming_metrics import aggregate
from core.events import Event, user_uuid
from core.sink import Consumed


def consumed(kind: str, when: datetime, amount: str | None = None) -> Consumed:
    return Consumed(Event(str(uuid.uuid4()), user_uuid(1), kind, when, Decimal(amount) if amount else None, {}), 0, 0)


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
