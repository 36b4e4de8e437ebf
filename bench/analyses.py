"""The analyses of ``analytics/`` against what a user would write without the summaries (bench.history).

Each analysis is answered twice over the same history: by its library, which reads the
per-person-day summaries (analytics_person_days), and by a naive SQL over ``events_raw``, a
straightforward GROUP BY and join a user would write, computing the same answer. Both answers are
brought to the same shape (sorted tuples) and must be equal: the bench fails a row whose answers
differ, whatever its times.

* retention: 52 weekly cohorts by first-purchase week, 52 weeks after each (``analytics.cohorts``;
  by first purchase because the bench's users all signed up before its history);
* the ordered funnel: 30 days, people per step and the median seconds between steps
  (``analytics.funnels``);
* customer histories: every buyer's first purchase, frequency, recency, age, mean repeat spend,
  purchases, revenue, last active day and holdout, the RFM and lifetime-value input
  (``analytics.customers``), with a calibration end 13 weeks before the last day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from analytics import cohorts, customers, funnels
from core import db

RETENTION_WEEKS = 52
FUNNEL_DAYS = 30
HOLDOUT_WEEKS = 13
# Medians are compared with this relative tolerance (both are float8 from percentile_cont over
# the same NUMERIC seconds; the tolerance only absorbs a different order of summation).
REL_TOL = 1e-9

# -- the naive answers: SQL over events_raw ---------------------------------------------------

NAIVE_RETENTION = """
WITH firsts AS (
    SELECT user_id, date_trunc('week', min(event_date))::date AS cohort
    FROM events_raw WHERE event_type = 'purchase' AND event_date <= %(as_of)s GROUP BY user_id
), activity AS (
    SELECT DISTINCT user_id, date_trunc('week', event_date)::date AS week
    FROM events_raw WHERE event_date BETWEEN %(first)s AND %(as_of)s
)
SELECT f.cohort, NULL::int AS week, count(*) FROM firsts AS f WHERE f.cohort >= %(first)s GROUP BY 1
UNION ALL
SELECT f.cohort, (a.week - f.cohort) / 7, count(*)
FROM firsts AS f JOIN activity AS a ON a.user_id = f.user_id AND a.week >= f.cohort
WHERE f.cohort >= %(first)s GROUP BY 1, 2
"""

# Every page view with its first cart within the window (a join), then that cart's first purchase
# within the window counted from the view; per person and day the sequence that goes furthest,
# then the one completed first, then the latest view; then people per step and the medians.
NAIVE_FUNNEL = """
WITH ev AS (
    SELECT user_id, event_date, event_type, event_timestamp AS ts FROM events_raw
    WHERE event_date BETWEEN %(first)s AND %(last)s AND event_type IN ('page_view', 'add_to_cart', 'purchase')
), carted AS (
    SELECT v.event_date, v.user_id, v.ts AS viewed, min(c.ts) AS carted
    FROM ev AS v LEFT JOIN ev AS c
      ON c.user_id = v.user_id AND c.event_date = v.event_date AND c.event_type = 'add_to_cart'
     AND c.ts >= v.ts AND c.ts <= v.ts + make_interval(secs => %(window)s)
    WHERE v.event_type = 'page_view' GROUP BY 1, 2, 3
), sequences AS (
    SELECT s.event_date, s.user_id, s.viewed, s.carted, min(p.ts) AS bought
    FROM carted AS s LEFT JOIN ev AS p
      ON p.user_id = s.user_id AND p.event_date = s.event_date AND p.event_type = 'purchase'
     AND p.ts >= s.carted AND p.ts <= s.viewed + make_interval(secs => %(window)s)
    GROUP BY 1, 2, 3, 4
), best AS (
    SELECT DISTINCT ON (event_date, user_id) event_date,
           CASE WHEN bought IS NOT NULL THEN 3 WHEN carted IS NOT NULL THEN 2 ELSE 1 END AS step,
           extract(epoch FROM carted - viewed)::numeric(16, 6) AS view_to_cart_s,
           extract(epoch FROM bought - carted)::numeric(16, 6) AS cart_to_purchase_s
    FROM sequences
    ORDER BY event_date, user_id, (bought IS NOT NULL) DESC, (carted IS NOT NULL) DESC, coalesce(bought, carted, viewed),
             viewed DESC
)
SELECT event_date, count(*), count(*) FILTER (WHERE step >= 2), count(*) FILTER (WHERE step >= 3),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY view_to_cart_s) FILTER (WHERE step >= 2),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY cart_to_purchase_s) FILTER (WHERE step >= 3)
FROM best GROUP BY 1 ORDER BY 1
"""

NAIVE_CUSTOMERS = """
WITH purchase_days AS (
    SELECT user_id, event_date, count(*) AS purchases, coalesce(sum(amount), 0) AS revenue
    FROM events_raw WHERE event_type = 'purchase' AND event_date <= %(as_of)s GROUP BY 1, 2
), firsts AS (
    SELECT user_id, min(event_date) AS first_purchase FROM purchase_days WHERE event_date <= %(end)s GROUP BY 1
), histories AS (
    SELECT d.user_id, f.first_purchase,
           count(*) FILTER (WHERE d.event_date > f.first_purchase) AS frequency,
           max(d.event_date) AS last_purchase,
           sum(d.revenue) FILTER (WHERE d.event_date > f.first_purchase) AS repeat_revenue,
           sum(d.purchases) AS purchases, sum(d.revenue) AS revenue
    FROM purchase_days AS d JOIN firsts AS f USING (user_id) WHERE d.event_date <= %(end)s
    GROUP BY 1, 2
), last_active AS (
    SELECT user_id, max(event_date) AS day FROM events_raw WHERE event_date <= %(end)s GROUP BY 1
), holdout AS (
    SELECT user_id, count(*) AS days, sum(revenue) AS revenue
    FROM purchase_days WHERE event_date > %(end)s GROUP BY 1
)
SELECT h.user_id::text, h.first_purchase, h.frequency, h.last_purchase - h.first_purchase, %(end)s::date - h.first_purchase,
       round(h.repeat_revenue / nullif(h.frequency, 0), 6), h.purchases, h.revenue, a.day,
       coalesce(o.days, 0), coalesce(o.revenue, 0)
FROM histories AS h JOIN last_active AS a USING (user_id) LEFT JOIN holdout AS o USING (user_id)
ORDER BY 1
"""

# -- pure: answers in one shape, and how two differ -------------------------------------------

Answer = list[tuple[Any, ...]]


def retention_answer(result: cohorts.Retention) -> Answer:
    """The library's retention (every country together) as (week, size, active per week) rows."""
    return sorted((c.week, c.size, tuple(c.active)) for c in result.cohorts if c.country is None)


def retention_from_counts(rows: Sequence[tuple[date, int | None, int]], as_of: date, weeks: int) -> Answer:
    """Rows of (cohort week, None, size) and (cohort week, weeks after, active people), as the
    naive SQL gives them, as retention_answer's rows: the weeks after 0..``weeks``, 0 where
    nobody was active, None for a week not begun by ``as_of``'s week."""
    sizes = {week: int(n) for week, k, n in rows if k is None}
    active = {(week, int(k)): int(n) for week, k, n in rows if k is not None}
    last = cohorts.week_of(as_of)
    return sorted(
        (
            week,
            size,
            tuple(active.get((week, k), 0) if week + timedelta(weeks=k) <= last else None for k in range(weeks + 1)),
        )
        for week, size in sizes.items()
    )


def funnel_answer(result: funnels.Funnel) -> Answer:
    """The library's funnel (every country together) as (day, viewed, carted, bought, medians) rows."""
    return sorted(
        (row.day, row.viewed, row.carted, row.bought, row.median_view_to_cart_s, row.median_cart_to_purchase_s)
        for row in result.rows
        if row.country is None
    )


def customers_answer(found: Sequence[customers.Customer]) -> Answer:
    """The library's customer histories as rows in the naive SQL's order (user id)."""
    return sorted(tuple(vars(c).values()) for c in found)


def same_value(a: Any, b: Any, rel_tol: float = REL_TOL) -> bool:
    """Equal values: None only equals None, tuples item by item, a float within ``rel_tol`` of
    the other number, anything else by ``==`` (a Decimal equals the int of the same value)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (
            isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
            and all(same_value(x, y, rel_tol) for x, y in zip(a, b, strict=True))
        )  # fmt: skip
    if isinstance(a, float) or isinstance(b, float):
        numbers = (int, float, Decimal)
        if not (isinstance(a, numbers) and isinstance(b, numbers)) or isinstance(a, bool) or isinstance(b, bool):
            return False
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=0.0)
    return bool(a == b)


def first_difference(expected: Answer, found: Answer, rel_tol: float = REL_TOL) -> str | None:
    """None when the two answers are the same rows (floats within ``rel_tol``), else what differs
    first: the row counts, or the first row that is not the same (no personal data: a row is
    shown by its position)."""
    if len(expected) != len(found):
        return f"{len(found):,} rows where the naive SQL has {len(expected):,}"
    for i, (want, got) in enumerate(zip(expected, found, strict=True)):
        if not same_value(want, got, rel_tol):
            columns = [j for j, (x, y) in enumerate(zip(want, got, strict=False)) if not same_value(x, y, rel_tol)]
            return f"row {i + 1:,} of {len(expected):,} differs in column(s) {columns or 'count'}"
    return None


# -- the analyses, each answered both ways ----------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """One analysis: its key and name, its answer from the summaries, its answer from events_raw."""

    key: str
    name: str
    summaries: Callable[[db.Cursor], Answer]
    naive: Callable[[db.Cursor], Answer]


def analyses(as_of: date, funnel_window_s: int) -> list[Analysis]:
    """The three analyses as of ``as_of`` (the last summarised day)."""
    first = as_of - timedelta(weeks=RETENTION_WEEKS - 1)  # 52 cohorts, the last as_of's week
    funnel_first = as_of - timedelta(days=FUNNEL_DAYS - 1)
    end = as_of - timedelta(weeks=HOLDOUT_WEEKS)

    def retention_summaries(cur: db.Cursor) -> Answer:
        result = cohorts.retention(cur, first=first, as_of=as_of, weeks=RETENTION_WEEKS, by="first-purchase")
        return retention_answer(result)

    def retention_naive(cur: db.Cursor) -> Answer:
        cur.execute(NAIVE_RETENTION, {"first": cohorts.week_of(first), "as_of": as_of})
        return retention_from_counts(cur.fetchall(), as_of, RETENTION_WEEKS)

    def funnel_summaries(cur: db.Cursor) -> Answer:
        return funnel_answer(funnels.funnel(cur, funnel_first, as_of, window_s=funnel_window_s))

    def funnel_naive(cur: db.Cursor) -> Answer:
        cur.execute(NAIVE_FUNNEL, {"first": funnel_first, "last": as_of, "window": funnel_window_s})
        return [(d, int(v), int(c), int(b), _float(m1), _float(m2)) for d, v, c, b, m1, m2 in cur.fetchall()]

    def customers_summaries(cur: db.Cursor) -> Answer:
        return customers_answer(customers.customers(cur, as_of, end))

    def customers_naive(cur: db.Cursor) -> Answer:
        cur.execute(NAIVE_CUSTOMERS, {"end": end, "as_of": as_of})
        return [(*row[:2], *(int(n) for n in row[2:5]), row[5], int(row[6]), *row[7:9], int(row[9]), row[10]) for row in cur]

    return [
        Analysis(
            "cohorts",
            f"retention matrix, {RETENTION_WEEKS} weekly cohorts by first purchase x {RETENTION_WEEKS} weeks",
            retention_summaries,
            retention_naive,
        ),
        Analysis("funnel", f"ordered funnel, {FUNNEL_DAYS} days", funnel_summaries, funnel_naive),
        Analysis(
            "customers",
            f"customer histories (RFM / lifetime-value input, {HOLDOUT_WEEKS}-week holdout)",
            customers_summaries,
            customers_naive,
        ),
    ]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
