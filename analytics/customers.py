"""Per-person purchase histories for the RFM and lifetime-value models, from the per-person-day
summaries (analytics.summaries), read from their rollups (sql/041, analytics.rollups): the
totals per person for the whole history, the weeks per person and the days at a range's edges
for a calibration end before the last summarised day (the holdout). The BG/NBD inputs counted in days, as ``lifetimes`` and
pymc-marketing count them with a daily period. Pseudonymous rows: for the analytics login only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from analytics import rollups
from core import db


@dataclass(frozen=True)
class Customer:
    """One person who bought at least once by the calibration end."""

    user_id: str
    first_purchase: date
    frequency: int  # repeat purchase days: the days with a purchase after the first purchase's
    recency_days: int  # from the first purchase's day to the last purchase's day
    age_days: int  # T: from the first purchase's day to the calibration end (as_of without one)
    repeat_mean_spend: Decimal | None  # mean revenue of a repeat purchase day (6 decimals); None without any
    purchases: int  # purchase events by the calibration end
    total_revenue: Decimal  # by the calibration end
    last_active: date  # the last day with any event, by the calibration end
    holdout_purchase_days: int  # days with a purchase after the calibration end, up to as_of (0 without one)
    holdout_revenue: Decimal


# One person's piece of history in one shape, from the totals' rollup, a week's or a day's row.
_DAY_PIECE = (
    "SELECT user_id, (purchases > 0)::int AS purchase_days, purchases, revenue,"
    " CASE WHEN purchases > 0 THEN event_date END AS first_purchase,"
    " CASE WHEN purchases > 0 THEN revenue END AS first_purchase_revenue,"
    " CASE WHEN purchases > 0 THEN event_date END AS last_purchase, event_date AS last_active"
    " FROM analytics_person_days WHERE event_date BETWEEN %({p}_head_first)s AND %({p}_head_last)s"
    " OR event_date BETWEEN %({p}_tail_first)s AND %({p}_tail_last)s"
)
_WEEK_PIECE = (
    "SELECT user_id, purchase_days, purchases, revenue, first_purchase, first_purchase_revenue, last_purchase, last_active"
    " FROM analytics_person_weeks WHERE week BETWEEN %({p}_weeks_first)s AND %({p}_weeks_last)s"
)
_TOTALS = (
    "SELECT user_id, purchase_days, purchases, revenue, first_purchase, first_purchase_revenue, last_purchase, last_active"
    " FROM analytics_person_totals"
)
_RANGE = f"{_WEEK_PIECE} UNION ALL {_DAY_PIECE}"

# The histories from the pieces of the calibration (up to its end) and of the holdout (after it,
# up to as_of). Revenue is that of purchases only, so a repeat purchase day's revenue is the
# calibration's minus that of the first purchase day.
CUSTOMERS_SQL = """
WITH calibration AS ({calibration}), holdout_pieces AS ({holdout}),
histories AS (
    SELECT user_id, min(first_purchase) AS first_purchase, sum(purchase_days) - 1 AS frequency,
           max(last_purchase) AS last_purchase,
           sum(revenue) - (array_agg(first_purchase_revenue ORDER BY first_purchase)
                           FILTER (WHERE first_purchase IS NOT NULL))[1] AS repeat_revenue,
           sum(purchases) AS purchases, sum(revenue) AS revenue, max(last_active) AS last_active
    FROM calibration GROUP BY user_id HAVING min(first_purchase) IS NOT NULL
), holdout AS (
    SELECT user_id, sum(purchase_days) AS days, sum(revenue) AS revenue FROM holdout_pieces GROUP BY user_id
)
SELECT h.user_id::text, h.first_purchase, h.frequency, h.last_purchase - h.first_purchase, %(end)s::date - h.first_purchase,
       round(h.repeat_revenue / nullif(h.frequency, 0), 6), h.purchases, h.revenue, h.last_active,
       coalesce(o.days, 0), coalesce(o.revenue, 0)
FROM histories AS h LEFT JOIN holdout AS o USING (user_id)
ORDER BY h.user_id
"""


def customers_sql(whole_history: bool) -> str:
    """The statement: the calibration from the totals' rollup when it is the whole history, else
    from the weeks' rollup and the edge days (analytics.rollups)."""
    calibration = _TOTALS if whole_history else _RANGE.format(p="cal")
    return CUSTOMERS_SQL.format(calibration=calibration, holdout=_RANGE.format(p="hold"))


def customers(cur: db.Cursor, as_of: date, calibration_end: date | None = None) -> list[Customer]:
    """Every person with a purchase on a summarised day by ``calibration_end`` (``as_of`` without
    one), with their history up to it; what they bought after it, up to ``as_of``, is the
    holdout. Days past retention are gone from the summaries, so a history starts at the
    oldest day kept."""
    end = as_of if calibration_end is None else calibration_end
    if end > as_of:
        raise ValueError(f"the calibration end {end} is after as_of {as_of}")
    # The totals hold every summarised day: they are the calibration when no day after it is summarised.
    cur.execute("SELECT %s::date >= coalesce(max(event_date), %s::date) FROM analytics_person_days_built", (end, end))
    row = cur.fetchone()
    whole = bool(row and row[0])
    params = {
        "end": end,
        "as_of": as_of,
        **rollups.split(date.min, end).params("cal"),
        **rollups.split(end + timedelta(days=1), as_of).params("hold"),
    }
    cur.execute(customers_sql(whole), params)
    return [
        Customer(
            row[0],
            row[1],
            int(row[2]),
            int(row[3]),
            int(row[4]),
            None if row[5] is None else Decimal(row[5]),
            int(row[6]),
            Decimal(row[7]),
            row[8],
            int(row[9]),
            Decimal(row[10]),
        )
        for row in cur.fetchall()
    ]
