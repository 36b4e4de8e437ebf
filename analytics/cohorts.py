"""Retention: weekly cohorts (by signup week, or by the week of the first purchase) and the share
of each cohort active in each following week. Weeks start on Monday (UTC); a person is active in a
week when any event of theirs is on a summarised day of it. Read from the rollups of the
per-person-day summaries (sql/041: a row per person and week, a row per person; the summaries only
for the days of as_of's week when it has not ended, analytics.rollups) and users_public (signup
date, country), never from events_raw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from analytics import rollups
from analytics.release import marker, suppressed_cells
from core import db

BY = ("signup", "first-purchase")

# The people of each cohort (user_id, cohort week, country): by signup, every person of
# users_public who signed up in the range (active or not); by first purchase, every person whose
# first purchase on a summarised day falls in it (the totals' rollup holds that day).
_PEOPLE = {
    "signup": "SELECT user_id, date_trunc('week', signup_date)::date AS cohort, coalesce(country, 'unknown') AS country"
    " FROM users_public WHERE signup_date BETWEEN %(first)s AND %(as_of)s",
    "first-purchase": "SELECT t.user_id, date_trunc('week', t.first_purchase)::date AS cohort,"
    " coalesce(u.country, 'unknown') AS country FROM analytics_person_totals AS t"
    " LEFT JOIN users_public AS u ON u.user_id = t.user_id"
    " WHERE t.first_purchase BETWEEN %(first)s AND %(as_of)s",
}

# Who was active in which week, from the first cohort's Monday to as_of: the whole weeks from the
# weeks' rollup, the days of as_of's week (when it has not ended) from the summaries.
_ACTIVITY = (
    "SELECT user_id, week FROM analytics_person_weeks WHERE week BETWEEN %(range_weeks_first)s AND %(range_weeks_last)s"
    " UNION ALL SELECT DISTINCT user_id, date_trunc('week', event_date)::date FROM analytics_person_days"
    " WHERE event_date BETWEEN %(range_tail_first)s AND %(range_tail_last)s"
    " OR event_date BETWEEN %(range_head_first)s AND %(range_head_last)s"
)


def week_of(day: date) -> date:
    """The Monday that starts ``day``'s week."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Cohort:
    week: date  # its Monday
    country: str | None  # None: every country together
    size: int
    active: list[int | None]  # per week after the cohort's (0: its own week); None: not begun by as_of

    def shares(self) -> list[float | None]:
        return [None if n is None else (n / self.size if self.size else None) for n in self.active]


@dataclass(frozen=True)
class Retention:
    by: str
    as_of: date  # the last day counted (the last summarised day by default)
    weeks: int  # weeks after the cohort's own shown
    cohorts: list[Cohort]


def retention(cur: db.Cursor, *, first: date, as_of: date, weeks: int, by: str = "signup", by_country: bool = False) -> Retention:
    """Cohorts of the weeks from ``first``'s to ``as_of``'s, each with its activity in its own week
    and the ``weeks`` after. A week that starts after ``as_of`` is None (not 0: it has not
    happened); the week holding ``as_of`` counts its days up to ``as_of``."""
    if by not in BY:
        raise ValueError(f"by is one of {BY}, not {by!r}")
    start = week_of(first)
    params: dict[str, date] = {"first": start, "as_of": as_of, **rollups.split(start, as_of).params("range")}
    cur.execute(
        f"WITH people AS ({_PEOPLE[by]})"  # noqa: S608 - one of two constants
        " SELECT p.cohort, p.country, count(*) FROM people AS p GROUP BY 1, 2",
        params,
    )
    sizes = {(week, country): int(n) for week, country, n in cur.fetchall()}
    cur.execute(
        f"WITH people AS ({_PEOPLE[by]}), activity AS ({_ACTIVITY})"  # noqa: S608 - constants
        " SELECT p.cohort, p.country, (a.week - p.cohort) / 7, count(*)"
        " FROM people AS p JOIN activity AS a ON a.user_id = p.user_id AND a.week >= p.cohort GROUP BY 1, 2, 3",
        params,
    )
    active = {(week, country, int(k)): int(n) for week, country, k, n in cur.fetchall()}
    if not by_country:
        sizes = _together(sizes)
        active = _together(active)
    last_week = week_of(as_of)
    cohorts = []
    for week, country in sorted(sizes, key=lambda key: (key[0], key[1] or "")):
        cells: list[int | None] = []
        for k in range(weeks + 1):
            begun = week + timedelta(weeks=k) <= last_week
            cells.append(active.get((week, country, k), 0) if begun else None)
        cohorts.append(Cohort(week, country, sizes[(week, country)], cells))
    return Retention(by, as_of, weeks, cohorts)


def _together(counts: dict[Any, int]) -> dict[Any, int]:
    """The counts of every country summed, the country None."""
    summed: dict[Any, int] = {}
    for key, n in counts.items():
        together = (key[0], None, *key[2:])
        summed[together] = summed.get(together, 0) + n
    return summed


def publishable(result: Retention, k: int) -> dict[str, Any]:
    """The table as it may leave the pseudonymous zone (JSON-ready): a cohort of fewer than ``k``
    people is shown by its week only, and a cell describing fewer than ``k`` people (not zero)
    is suppressed by the release rules (analytics.release), with its share; future cells are null."""
    shown = marker(k)
    cohorts = []
    for cohort in result.cohorts:
        small = 0 < cohort.size < k
        cells = {i: n for i, n in enumerate(cohort.active) if n is not None}
        hidden = suppressed_cells(cells, k)
        shares = cohort.shares()
        cohorts.append(
            {
                "week": cohort.week.isoformat(),
                "country": cohort.country,
                "size": shown if small else cohort.size,
                "active": [None if n is None else (shown if small or i in hidden else n) for i, n in enumerate(cohort.active)],
                "share": [None if s is None else (shown if small or i in hidden else s) for i, s in enumerate(shares)],
            }
        )
    return {"by": result.by, "as_of": result.as_of.isoformat(), "weeks": result.weeks, "min_cell_users": k, "cohorts": cohorts}
