"""Which days the raw-events sink gives a partition of events_raw before it writes a batch."""

from __future__ import annotations

from datetime import date, timedelta

from core.partitions import AHEAD_DAYS, DailyPartitions, ahead, runs

TODAY = date(2026, 11, 23)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_consecutive_days_become_one_range_each() -> None:
    spread = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 5), date(2026, 2, 1), date(2026, 2, 2)]
    assert runs(spread) == [
        (date(2026, 1, 1), date(2026, 1, 3)),
        (date(2026, 1, 5), date(2026, 1, 5)),
        (date(2026, 2, 1), date(2026, 2, 2)),
    ]
    assert runs([]) == []


def test_yesterday_today_and_the_week_ahead_are_always_wanted() -> None:
    assert ahead(TODAY) == (date(2026, 11, 22), TODAY + timedelta(days=AHEAD_DAYS))
    keeper = DailyPartitions(retention_days=395)
    assert keeper.missing([], TODAY) == days(*ahead(TODAY))
    keeper.known = set(days(*ahead(TODAY)))
    assert keeper.missing([TODAY, TODAY + timedelta(days=1)], TODAY) == []


def test_late_days_within_the_retention_get_a_partition_older_ones_and_the_far_future_do_not() -> None:
    keeper = DailyPartitions(retention_days=30)
    keeper.known = set(days(*ahead(TODAY)))
    late = TODAY - timedelta(days=30)
    too_old = TODAY - timedelta(days=31)
    far = TODAY + timedelta(days=AHEAD_DAYS + 1)
    assert keeper.missing([late, too_old, far, TODAY], TODAY) == [late]
