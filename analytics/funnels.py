"""The ordered funnel, people not events: of the people who viewed a page on a day, how many then
added to the cart, and then bought, in that order within the conversion window
(ANALYTICS_FUNNEL_WINDOW_S), per day and country, with the median time between steps. Read from
the per-person-day summaries (analytics.summaries), whose funnel columns are built with the window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from analytics import summaries
from analytics.release import marker, suppressed_cells
from core import db
from core.errors import InvalidInput

STEPS = ("page_view", "add_to_cart", "purchase")


class WindowMismatch(InvalidInput):
    """Days in the range were summarised with another conversion window than the one asked for."""


@dataclass(frozen=True)
class FunnelRow:
    """One day (and country, when broken down) of the funnel: people per step reached in order."""

    day: date
    country: str | None  # None: every country together
    viewed: int
    carted: int  # viewed, then added to the cart within the window
    bought: int  # ... then bought within the window
    median_view_to_cart_s: float | None
    median_cart_to_purchase_s: float | None

    @property
    def people(self) -> tuple[int, int, int]:
        return (self.viewed, self.carted, self.bought)


@dataclass(frozen=True)
class Funnel:
    """The funnel over a range of days: the window, the rows, and the days without summaries."""

    window_s: int
    first: date
    last: date
    rows: list[FunnelRow]
    missing: list[date]  # days in the range not summarised (today, not closed yet; or past retention)


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def funnel(cur: db.Cursor, first: date, last: date, *, window_s: int, by_country: bool = False) -> Funnel:
    """The ordered funnel of the summarised days from ``first`` to ``last``. WindowMismatch when
    any of them was built with another window than ``window_s``: the summaries hold the sequence
    of that window only, and the raw events are never rescanned to answer another."""
    built = summaries.coverage(cur, first, last)
    other = {window: days for window, days in built.windows.items() if window != window_s}
    if other:
        window, days = sorted(other.items())[0]
        raise WindowMismatch(
            f"{len(days)} days from {days[0]} to {days[-1]} were summarised with a funnel window of {window} s, not"
            f" ANALYTICS_FUNNEL_WINDOW_S={window_s}: set it back, or rebuild those days with"
            f" `python -m batch.batch_metrics --from {days[0]} --to {days[-1]}`"
        )
    summarised = {day for days in built.windows.values() for day in days}
    missing = [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]
    missing = [day for day in missing if day not in summarised]
    country = "coalesce(u.country, 'unknown')" if by_country else "NULL::text"
    cur.execute(
        f"SELECT s.event_date, {country},"  # noqa: S608 - one of two constants
        " count(*) FILTER (WHERE s.funnel_step >= 1), count(*) FILTER (WHERE s.funnel_step >= 2),"
        " count(*) FILTER (WHERE s.funnel_step >= 3),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY s.view_to_cart_s) FILTER (WHERE s.funnel_step >= 2),"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY s.cart_to_purchase_s) FILTER (WHERE s.funnel_step >= 3)"
        " FROM analytics_person_days AS s LEFT JOIN users_public AS u ON u.user_id = s.user_id"
        " WHERE s.event_date BETWEEN %s AND %s AND s.funnel_step >= 1"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        (first, last),
    )
    rows = [
        FunnelRow(day, place, int(v), int(c), int(b), None if m1 is None else float(m1), None if m2 is None else float(m2))
        for day, place, v, c, b, m1, m2 in cur.fetchall()
    ]
    return Funnel(window_s, first, last, rows, missing)


def open_day(cur: db.Cursor, *, window_s: int) -> Funnel:
    """Today's (UTC) ordered funnel, every country together: the day is open and has no
    summaries, so it is computed from today's events_raw partition alone by the rules the summaries
    are built with (the owner's ``analytics_funnel_today``, sql/038: the same row function as the
    batch job's build, aggregated as ``funnel`` aggregates the summaries); nothing is written. For
    the dashboard's login, which executes the function and reads no events."""
    cur.execute("SELECT * FROM analytics_funnel_today(%s)", (window_s,))
    [(day, viewed, carted, bought, m1, m2)] = cur.fetchall()
    rows = [] if not viewed else [FunnelRow(day, None, int(viewed), int(carted), int(bought), m1, m2)]
    return Funnel(window_s, day, day, rows, [])


def publishable(result: Funnel, k: int) -> dict[str, Any]:
    """The funnel as it may leave the pseudonymous zone (JSON-ready): a step's count describing
    fewer than ``k`` people is suppressed by the release rules (analytics.release, across the countries
    of a day), and so are the rates and median times that rest on it."""
    hidden: set[tuple[date, str | None, int]] = set()
    for step in range(3):
        for day in {row.day for row in result.rows}:
            cells = {(row.day, row.country, step): row.people[step] for row in result.rows if row.day == day}
            hidden |= suppressed_cells(cells, k)
    shown = marker(k)
    rows = []
    for row in result.rows:
        counts = {
            name: (shown if (row.day, row.country, i) in hidden else n)
            for i, (name, n) in enumerate(zip(STEPS, row.people, strict=True))
        }
        visible = [(row.day, row.country, i) not in hidden for i in range(3)]
        rows.append(
            {
                "day": row.day.isoformat(),
                "country": row.country,
                "people": counts,
                "rate_view_to_cart": rate(row.carted, row.viewed) if visible[0] and visible[1] else shown,
                "rate_cart_to_purchase": rate(row.bought, row.carted) if visible[1] and visible[2] else shown,
                "rate_view_to_purchase": rate(row.bought, row.viewed) if visible[0] and visible[2] else shown,
                "median_view_to_cart_s": row.median_view_to_cart_s if visible[1] else shown,
                "median_cart_to_purchase_s": row.median_cart_to_purchase_s if visible[2] else shown,
            }
        )
    return {
        "window_s": result.window_s,
        "from": result.first.isoformat(),
        "to": result.last.isoformat(),
        "days_not_summarised": [day.isoformat() for day in result.missing],
        "min_cell_users": k,
        "rows": rows,
    }
