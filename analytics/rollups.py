"""How a range of days is read from the rollups (sql/041): the whole ISO weeks inside it from
analytics_person_weeks, the days at its edges from analytics_person_days. A query then reads rows
bounded by people x weeks, plus at most six days at each edge, however busy the days were."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

_WEEK = timedelta(days=7)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Split:
    """The weeks (Mondays) ``weeks_first``..``weeks_last`` read whole from the weeks' rollup, and
    the days ``head_first``..``head_last`` and ``tail_first``..``tail_last`` read from the
    summaries. An empty part has its first after its last."""

    weeks_first: date
    weeks_last: date
    head_first: date
    head_last: date
    tail_first: date
    tail_last: date

    def params(self, prefix: str) -> dict[str, date]:
        """The six bounds as query parameters named ``{prefix}_weeks_first`` and so on."""
        return {f"{prefix}_{name}": value for name, value in vars(self).items()}

    def days(self) -> list[date]:
        """Every day the split covers, in order (for tests)."""
        days: list[date] = []
        for first, last in ((self.head_first, self.head_last), (self.tail_first, self.tail_last)):
            days += [first + timedelta(days=i) for i in range((last - first).days + 1)]
        monday = self.weeks_first
        while monday <= self.weeks_last:
            days += [monday + timedelta(days=i) for i in range(7)]
            monday += _WEEK
        return sorted(days)


def split(first: date, last: date) -> Split:
    """``first``..``last`` as the whole weeks inside it and the days before and after them; an
    empty range (``first`` after ``last``) gives empty parts. ``first`` may be ``date.min`` (a
    Monday): from the beginning."""
    empty = (date.max, date.min)
    if first > last:
        return Split(*empty, *empty, *empty)
    weeks_first = first if first.weekday() == 0 else first + timedelta(days=7 - first.weekday())
    weeks_last = last - timedelta(days=6 if last.weekday() == 6 else last.weekday() + 7)
    if weeks_first > weeks_last:
        # No whole week inside: every day is an edge day.
        return Split(*empty, first, last, *empty)
    head = empty if weeks_first == first else (first, weeks_first - _DAY)
    tail = empty if weeks_last + timedelta(days=6) == last else (weeks_last + _WEEK, last)
    return Split(weeks_first, weeks_last, *head, *tail)
