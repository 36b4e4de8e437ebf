"""How a range of days is read from the rollups (analytics.rollups.split): every day once, whole
weeks from the weeks' rollup, at most six days at each edge."""

from __future__ import annotations

from datetime import date, timedelta

from analytics.rollups import split


def test_a_range_is_its_whole_weeks_and_its_edge_days_each_day_once() -> None:
    start = date(2024, 1, 1)  # a Monday
    for offset in range(14):
        for length in range(-1, 30):
            first = start + timedelta(days=offset)
            last = first + timedelta(days=length)
            parts = split(first, last)
            expected = [first + timedelta(days=i) for i in range(length + 1)]
            assert parts.days() == expected, (first, last)
            if parts.weeks_first <= parts.weeks_last:
                assert parts.weeks_first.weekday() == 0 and parts.weeks_last.weekday() == 0
                assert len(parts.days()) - 7 * ((parts.weeks_last - parts.weeks_first).days // 7 + 1) <= 12
            else:
                assert length < 13  # no Monday-to-Sunday inside


def test_from_the_beginning_reads_weeks_and_the_days_of_the_last_week_begun() -> None:
    parts = split(date.min, date(2024, 1, 10))  # a Wednesday
    assert (parts.weeks_first, parts.weeks_last) == (date.min, date(2024, 1, 1))
    assert (parts.tail_first, parts.tail_last) == (date(2024, 1, 8), date(2024, 1, 10))
    assert parts.head_first > parts.head_last
    sunday = split(date.min, date(2024, 1, 14))
    assert sunday.weeks_last == date(2024, 1, 8) and sunday.tail_first > sunday.tail_last
