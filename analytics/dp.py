"""Differentially private releases with OpenDP (issue 29): the figures that leave the pseudonymous
zone with noise, intervals and a ledger row, drawn from a budget (analytics.ledger).

The privacy unit is a person. Their contribution is bounded at the source, in the query that reads
the day summaries (:data:`BOUNDED_DAYS`): at most ``max_days`` person-days in one release (the
earliest of the range), each with events, purchases and revenue clamped (ReleaseSettings). The
cells are a PUBLIC key set, the configured country list times the calendar days of the range,
never the groups present in the data: a country nobody bought from is released as a noisy zero.

OpenDP adds all the noise (integer Laplace, from its own sampler; its "contrib" feature on, its
"floating-point" feature off: every figure is an integer, revenue in cents) and states each
figure's 95 % interval (its accuracy summary). A person has one country, so the cells of one day
are disjoint: OpenDP's margin by (day, country) bounds a person to one cell a day (parallel
composition), and a breakdown by country costs the same epsilon as the total. Across the days of
the range a person counts up to ``max_days`` times, which the privacy unit declares.

Order of work in :func:`release_daily_kpis`: the budget is locked and checked first
(BudgetExhausted before anything is read or computed), then the data are read, the measurement is
built, its privacy loss is OpenDP's own privacy map, the figures are released, and the ledger row
is written in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import opendp.prelude as dp
import polars as pl
from opendp.extras.polars import Margin

from analytics import ledger
from core import db
from core.config import ReleaseSettings
from core.errors import InvalidInput

# Integer (discrete) Laplace needs no floating-point opt-in; "contrib" holds the Polars API.
dp.enable_features("contrib")

UNIT = "person"
MECHANISM = "integer Laplace (OpenDP, pure DP)"
ALPHA = 0.05  # the intervals are 95 %
QUERY_DAILY_KPIS = "daily_kpis_by_country"
MAX_RANGE_DAYS = 366
KPIS = ("people", "events", "purchases", "revenue")
# A public upper bound on the rows of one cell (OpenDP needs one to prove an integer sum cannot
# overflow): more people than the platform could hold in a day.
MAX_CELL_ROWS = 1_000_000_000

# One row per person-day within the range, of the first max_days days of each person in it, with
# the day's figures clamped; the person's country from the public profile. Nothing per person
# leaves this module: the rows go to OpenDP only.
BOUNDED_DAYS = """
SELECT event_date, country, events, purchases, revenue_cents FROM (
    SELECT d.event_date, u.country,
           least(d.page_views + d.add_to_carts + d.purchases, %(max_events)s)::bigint AS events,
           least(d.purchases, %(max_purchases)s)::bigint AS purchases,
           round(least(greatest(d.revenue, 0), %(max_spend)s) * 100)::bigint AS revenue_cents,
           row_number() OVER (PARTITION BY d.user_id ORDER BY d.event_date) AS nth
    FROM analytics_person_days d JOIN users_public u USING (user_id)
    WHERE d.event_date BETWEEN %(first)s AND %(last)s
) bounded WHERE nth <= %(max_days)s
"""


@dataclass(frozen=True)
class Figure:
    """One released number and its 95 % interval (OpenDP's accuracy: value +- half_width)."""

    value: float
    half_width: float

    @property
    def low(self) -> float:
        return self.value - self.half_width

    @property
    def high(self) -> float:
        return self.value + self.half_width


@dataclass(frozen=True)
class Release:
    """A release: its cells' figures and what it declares (unit, bounds, mechanism, scales, epsilon)."""

    ledger_id: int
    analyst: str
    query: str
    epsilon: float
    cells: dict[tuple[date, str], dict[str, Figure]]  # (day, country) -> KPI -> figure
    declaration: dict[str, Any]
    budget_left: float


def public_keys(first: date, last: date, countries: tuple[str, ...]) -> pl.DataFrame:
    """The cells of a daily breakdown by country: every day of the range times every country."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return pl.DataFrame(
        {"event_date": [d for d in days for _ in countries], "country": [c for _ in days for c in countries]},
        schema={"event_date": pl.Date, "country": pl.String},
    )


def _dp(expr: pl.Expr) -> Any:
    """OpenDP's ``.dp`` namespace of a Polars expression (registered at run time, unknown to mypy)."""
    return expr.dp  # type: ignore[attr-defined]


def _query(rows: pl.LazyFrame, keys: pl.DataFrame, bounds: ReleaseSettings, epsilon: float) -> Any:
    """The OpenDP query of the daily KPIs: a person is up to ``max_days`` rows, one per cell."""
    context = dp.Context.compositor(
        data=rows,
        privacy_unit=dp.unit_of(contributions=bounds.max_days),
        privacy_loss=dp.loss_of(epsilon=epsilon),
        split_evenly_over=1,
        margins=[Margin(by=["event_date", "country"], max_length=MAX_CELL_ROWS)],
    )
    return (
        context.query()
        .group_by(["event_date", "country"])
        .agg(
            [
                _dp(pl.len()).noise().alias("people"),
                _dp(pl.col("events")).sum((0, bounds.max_events_per_day)).alias("events"),
                _dp(pl.col("purchases")).sum((0, bounds.max_purchases_per_day)).alias("purchases"),
                _dp(pl.col("revenue_cents")).sum((0, bounds.max_spend_per_day * 100)).alias("revenue_cents"),
            ]
        )
        .with_keys(keys)
    )


def check_range(first: date, last: date) -> None:
    if last < first:
        raise InvalidInput(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(f"a release covers at most {MAX_RANGE_DAYS} days")


def release_daily_kpis(
    cur: db.Cursor, analyst: str, *, first: date, last: date, epsilon: float, bounds: ReleaseSettings
) -> Release:
    """Release the daily KPIs (people, events, purchases, revenue in euros) by country from
    ``first`` to ``last`` (UTC days) at ``epsilon``, for ``analyst``, in the caller's transaction
    (commit it to keep the ledger row; roll back and nothing was spent or released).

    BudgetExhausted (with what is left) before anything is read when the analyst's or the overall
    budget cannot pay ``epsilon``; InvalidInput for a reversed or too long range."""
    check_range(first, last)
    left = ledger.reserve(cur, analyst, epsilon)
    params = {
        "first": first,
        "last": last,
        "max_days": bounds.max_days,
        "max_events": bounds.max_events_per_day,
        "max_purchases": bounds.max_purchases_per_day,
        "max_spend": bounds.max_spend_per_day,
    }
    cur.execute(BOUNDED_DAYS, params)
    schema = {"event_date": pl.Date, "country": pl.String, "events": pl.Int64, "purchases": pl.Int64, "revenue_cents": pl.Int64}
    rows = pl.LazyFrame(cur.fetchall(), schema=schema, orient="row")
    query = _query(rows, public_keys(first, last, bounds.countries), bounds, epsilon)
    summary = query.summarize(alpha=ALPHA)
    accuracy = dict(zip(summary["column"], summary["accuracy"], strict=True))
    scales = dict(zip(summary["column"], summary["scale"], strict=True))
    spent = float(query.resolve().map(bounds.max_days))
    released = query.release().collect()
    cells: dict[tuple[date, str], dict[str, Figure]] = {}
    for row in released.iter_rows(named=True):
        cells[(row["event_date"], row["country"])] = {
            "people": Figure(float(row["people"]), accuracy["people"]),
            "events": Figure(float(row["events"]), accuracy["events"]),
            "purchases": Figure(float(row["purchases"]), accuracy["purchases"]),
            "revenue": Figure(row["revenue_cents"] / 100, accuracy["revenue_cents"] / 100),
        }
    declaration = {
        "unit": UNIT,
        "bounds": {
            "days_per_person": bounds.max_days,
            "events_per_day": [0, bounds.max_events_per_day],
            "purchases_per_day": [0, bounds.max_purchases_per_day],
            "revenue_per_day_eur": [0, bounds.max_spend_per_day],
        },
        "mechanism": MECHANISM,
        "scale": {kpi: scales[kpi] for kpi in ("people", "events", "purchases")} | {"revenue_eur": scales["revenue_cents"] / 100},
        "epsilon": spent,
        "alpha": ALPHA,
        "keys": {"countries": list(bounds.countries), "days": [first.isoformat(), last.isoformat()]},
    }
    ledger_id = ledger.record(cur, analyst, QUERY_DAILY_KPIS, mechanism=MECHANISM, epsilon=spent, details=declaration)
    return Release(ledger_id, analyst, QUERY_DAILY_KPIS, spent, cells, declaration, left + epsilon - spent)
