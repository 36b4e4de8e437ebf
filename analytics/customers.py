"""Per-person purchase histories for the RFM and lifetime-value models, from the per-person-day
summaries (analytics.summaries): the BG/NBD inputs counted in days, as ``lifetimes`` and
pymc-marketing count them with a daily period. Pseudonymous rows: for the analytics login only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

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


CUSTOMERS_SQL = """
WITH calibration AS (
    SELECT user_id, event_date, purchases, revenue FROM analytics_person_days WHERE event_date <= %(end)s
), firsts AS (
    SELECT user_id, min(event_date) AS first_purchase FROM calibration WHERE purchases > 0 GROUP BY user_id
), histories AS (
    SELECT c.user_id, f.first_purchase,
           count(*) FILTER (WHERE c.purchases > 0 AND c.event_date > f.first_purchase) AS frequency,
           max(c.event_date) FILTER (WHERE c.purchases > 0) AS last_purchase,
           sum(c.revenue) FILTER (WHERE c.purchases > 0 AND c.event_date > f.first_purchase) AS repeat_revenue,
           sum(c.purchases) AS purchases, sum(c.revenue) AS revenue, max(c.event_date) AS last_active
    FROM calibration AS c JOIN firsts AS f USING (user_id)
    GROUP BY c.user_id, f.first_purchase
), holdout AS (
    SELECT user_id, count(*) FILTER (WHERE purchases > 0) AS days, sum(revenue) AS revenue
    FROM analytics_person_days WHERE event_date > %(end)s AND event_date <= %(as_of)s GROUP BY user_id
)
SELECT h.user_id::text, h.first_purchase, h.frequency, h.last_purchase - h.first_purchase, %(end)s::date - h.first_purchase,
       round(h.repeat_revenue / nullif(h.frequency, 0), 6), h.purchases, h.revenue, h.last_active,
       coalesce(o.days, 0), coalesce(o.revenue, 0)
FROM histories AS h LEFT JOIN holdout AS o USING (user_id)
ORDER BY h.user_id
"""


def customers(cur: db.Cursor, as_of: date, calibration_end: date | None = None) -> list[Customer]:
    """Every person with a purchase on a summarised day by ``calibration_end`` (``as_of`` without
    one), with their history up to it; what they bought after it, up to ``as_of``, is the
    holdout. Days past retention are gone from the summaries, so a history starts at the
    oldest day kept."""
    end = as_of if calibration_end is None else calibration_end
    if end > as_of:
        raise ValueError(f"the calibration end {end} is after as_of {as_of}")
    cur.execute(CUSTOMERS_SQL, {"end": end, "as_of": as_of})
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
