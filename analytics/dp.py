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

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import opendp.prelude as dp
import polars as pl
from opendp.accuracy import summarize_polars_measurement
from opendp.extras.polars import Margin

from analytics import ledger
from analytics.rfm_model import SEGMENTS
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

QUERY_FUNNEL = "funnel_by_day"
QUERY_RETENTION = "retention_by_signup_week"
QUERY_RFM = "rfm_segments"
QUERY_CLV = "clv_by_segment"
FUNNEL_STEPS = ("page_view", "add_to_cart", "purchase")  # funnel_step 1, 2, 3, in order
SIGNED_UP = -1  # the retention offset of a cohort's size (its people), beside the weeks 0, 1, ...
NO_RFM_SCORE = "no RFM score"  # the lifetime-value segment of people RFM's window holds no purchase of

# Each person-day of the first max_days of each person in the range, once per step it reached.
FUNNEL_ROWS = """
SELECT d.event_date, s.step FROM (
    SELECT event_date, funnel_step, row_number() OVER (PARTITION BY user_id ORDER BY event_date) AS nth
    FROM analytics_person_days WHERE event_date BETWEEN %(first)s AND %(last)s
) d JOIN (VALUES ('page_view', 1), ('add_to_cart', 2), ('purchase', 3)) AS s (step, n) ON s.n <= d.funnel_step
WHERE d.nth <= %(max_days)s
"""
# A row per person who signed up in the weeks (offset -1), and one per week they were active in the
# first %(weeks)s weeks from their signup week (offset 0 = the signup week).
RETENTION_ROWS = """
WITH cohort AS (
    SELECT user_id, date_trunc('week', signup_date)::date AS cohort FROM users_public
    WHERE signup_date BETWEEN %(first_week)s AND %(last_week)s + 6
)
SELECT cohort, -1 FROM cohort
UNION ALL
SELECT c.cohort, (w.week - c.cohort) / 7 FROM cohort c JOIN analytics_person_weeks w USING (user_id)
WHERE w.week >= c.cohort AND w.week < c.cohort + 7 * %(weeks)s
"""
# A person's value, clamped to [0, upper] euros, in cents, with their segment.
RFM_ROWS = """
SELECT segment, round(least(greatest(monetary, 0), %(upper)s) * 100)::bigint FROM analytics_rfm_scores
"""
CLV_ROWS = f"""
SELECT coalesce(r.segment, '{NO_RFM_SCORE}'),
       round(least(greatest(c.clv, 0), %(upper)s)::numeric * 100)::bigint
FROM analytics_clv_scores c LEFT JOIN analytics_rfm_scores r USING (user_id)
WHERE c.clv = c.clv
"""  # noqa: S608 - a constant of this module, no input
# value -> (the ledger's query name, the rows, the public segments)
SEGMENT_SOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "monetary": (QUERY_RFM, RFM_ROWS, SEGMENTS),
    "clv": (QUERY_CLV, CLV_ROWS, (*SEGMENTS, NO_RFM_SCORE)),
}


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


Key = tuple[date | str | int, ...]


@dataclass(frozen=True)
class Release:
    """A release: its cells' figures and what it declares (unit, bounds, mechanism, scales, epsilon)."""

    ledger_id: int
    analyst: str
    query: str
    epsilon: float
    cells: dict[Key, dict[str, Figure]]  # a cell's public key -> figure name -> figure
    declaration: dict[str, Any]
    budget_left: float
    key_names: tuple[str, ...] = ("day", "country")  # what each part of a cell's key is


@dataclass(frozen=True)
class Sum:
    """A figure summed over a cell's rows, each clamped to [0, upper] (integers: OpenDP's integer Laplace)."""

    column: str
    upper: int


COUNT = None  # a figure that counts a cell's rows (people, when a person is one row of the cell)


@dataclass(frozen=True)
class Measured:
    """What OpenDP released over the public keys: the figures by cell, their 95 % half-widths,
    their half-widths at 97.5 % (for a ratio of two figures, see :func:`mean`), the noise scales
    and the privacy loss."""

    rows: pl.DataFrame
    accuracy: dict[str, float]
    accuracy_half_alpha: dict[str, float]
    scale: dict[str, float]
    epsilon: float


def public_keys(first: date, last: date, countries: tuple[str, ...]) -> pl.DataFrame:
    """The cells of a daily breakdown by country: every day of the range times every country."""
    return _product({"event_date": (pl.Date, _days(first, last)), "country": (pl.String, list(countries))})


def _days(first: date, last: date, step: int = 1) -> list[date]:
    return [first + timedelta(days=n) for n in range(0, (last - first).days + 1, step)]


def _product(columns: dict[str, tuple[Any, list[Any]]]) -> pl.DataFrame:
    """Every combination of the columns' public values, the first column slowest: a key set."""
    keys = pl.DataFrame({name: pl.Series(name, values, dtype=dtype) for name, (dtype, values) in list(columns.items())[:1]})
    for name, (dtype, values) in list(columns.items())[1:]:
        keys = keys.join(pl.DataFrame({name: pl.Series(name, values, dtype=dtype)}), how="cross")
    return keys


def _dp(expr: pl.Expr) -> Any:
    """OpenDP's ``.dp`` namespace of a Polars expression (registered at run time, unknown to mypy)."""
    return expr.dp  # type: ignore[attr-defined]


def plan(
    rows: pl.LazyFrame, keys: pl.DataFrame, *, contributions: int, epsilon: float, figures: dict[str, Sum | None]
) -> tuple[Any, Any]:
    """OpenDP's context over ``rows`` and the measurement that counts and sums them in each cell
    of ``keys`` (public: every cell is released, none found in the data) at ``epsilon``, a person
    being at most ``contributions`` rows, each in one cell: each figure a count of the cell's rows
    (COUNT) or a sum clamped to [0, upper]. OpenDP splits the epsilon over the figures."""
    by = keys.columns
    context = dp.Context.compositor(
        data=rows,
        privacy_unit=dp.unit_of(contributions=contributions),
        privacy_loss=dp.loss_of(epsilon=epsilon),
        split_evenly_over=1,
        margins=[Margin(by=by, max_length=MAX_CELL_ROWS)],
    )
    aggregates = [
        (_dp(pl.len()).noise() if how is None else _dp(pl.col(how.column)).sum((0, how.upper))).alias(name)
        for name, how in figures.items()
    ]
    query: Any = context.query().group_by(by).agg(aggregates).with_keys(keys)
    # Resolved once (OpenDP builds and checks the plan: most of a release's cost).
    return context, query.resolve()


@dataclass(frozen=True)
class _Planned:
    """A resolved measurement and what OpenDP states about it, none of which depends on the data."""

    measurement: Any
    accuracy: dict[str, float]
    accuracy_half_alpha: dict[str, float]
    scale: dict[str, float]
    epsilon: float


# The measurements resolved so far, by query shape (least recently used dropped first): planning is
# most of a release's cost (~3 s), running a resolved measurement on new rows ~0.1 s.
PLAN_CACHE_SIZE = 64
_plans: OrderedDict[tuple[Any, ...], _Planned] = OrderedDict()
_plans_lock = threading.Lock()


def _shape(
    rows: pl.LazyFrame, keys: pl.DataFrame, contributions: int, epsilon: float, figures: dict[str, Sum | None]
) -> tuple[Any, ...]:
    """What a measurement depends on: the public keys, the bounds, the epsilon and the rows'
    schema. Never the rows themselves: a measurement is a function of any data of that schema."""
    return (
        tuple((name, str(dtype)) for name, dtype in rows.collect_schema().items()),
        tuple((name, str(dtype)) for name, dtype in keys.schema.items()),
        tuple(keys.iter_rows()),
        contributions,
        epsilon,
        tuple(figures.items()),
    )


def _planned(
    rows: pl.LazyFrame, keys: pl.DataFrame, *, contributions: int, epsilon: float, figures: dict[str, Sum | None]
) -> _Planned:
    """The measurement of this query shape, planned once (see :func:`plan`) and kept."""
    shape = _shape(rows, keys, contributions, epsilon, figures)
    with _plans_lock:
        found = _plans.get(shape)
        if found is not None:
            _plans.move_to_end(shape)
            return found
    _, measurement = plan(rows, keys, contributions=contributions, epsilon=epsilon, figures=figures)
    summary: Any = summarize_polars_measurement(measurement, ALPHA)
    wider: Any = summarize_polars_measurement(measurement, ALPHA / 2)
    planned = _Planned(
        measurement=measurement,
        accuracy=dict(zip(summary["column"], summary["accuracy"], strict=True)),
        accuracy_half_alpha=dict(zip(wider["column"], wider["accuracy"], strict=True)),
        scale=dict(zip(summary["column"], summary["scale"], strict=True)),
        epsilon=float(measurement.map(contributions)),
    )
    with _plans_lock:
        _plans[shape] = planned
        while len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return planned


def clear_plans() -> None:
    """Forget the planned measurements (the next release of each shape plans again)."""
    with _plans_lock:
        _plans.clear()


def measure(
    rows: pl.LazyFrame, keys: pl.DataFrame, *, contributions: int, epsilon: float, figures: dict[str, Sum | None]
) -> Measured:
    """The one place where a release meets OpenDP (see :func:`plan`): it adds the noise, states
    the accuracy, and its privacy map gives the loss. The measurement of a query shape is planned
    once and run on each release's rows: every run draws fresh noise, and every release is charged
    its epsilon (the measurement's privacy map) by its caller, as a fresh plan would be."""
    planned = _planned(rows, keys, contributions=contributions, epsilon=epsilon, figures=figures)
    return Measured(
        rows=planned.measurement(rows).collect(),
        accuracy=dict(planned.accuracy),
        accuracy_half_alpha=dict(planned.accuracy_half_alpha),
        scale=dict(planned.scale),
        epsilon=planned.epsilon,
    )


def mean(total: float, total_half: float, people: float, people_half: float, upper: float) -> Figure:
    """A cell's mean, total / people, from two released figures (post-processing: no loss). Its
    interval holds when both figures' 97.5 % intervals do, so with at least 95 %: the lowest total
    over the most people to the highest total over the fewest, within [0, upper] (every value was
    clamped there). The Figure is centred on the mean, its half-width the wider side."""
    value = min(max(total / people, 0.0), upper) if people >= 1 else upper / 2
    low = max(0.0, (total - total_half) / (people + people_half)) if people + people_half > 0 else 0.0
    fewest = people - people_half
    high = min(upper, (total + total_half) / fewest) if fewest >= 1 else upper
    return Figure(value, max(value - min(low, value), max(high, value) - value))


def check_range(first: date, last: date) -> None:
    if last < first:
        raise InvalidInput(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(f"a release covers at most {MAX_RANGE_DAYS} days")


def _rows(cur: db.Cursor, sql: str, params: dict[str, Any], schema: dict[str, Any]) -> pl.LazyFrame:
    cur.execute(sql, params)
    return pl.LazyFrame(cur.fetchall(), schema=schema, orient="row")


def _publish(
    cur: db.Cursor,
    analyst: str,
    query: str,
    *,
    asked: float,
    left: float,
    measured: Measured,
    cells: dict[Key, dict[str, Figure]],
    declaration: dict[str, Any],
    key_names: tuple[str, ...],
) -> Release:
    """The ledger row of a release (in the caller's transaction) and the release it returns."""
    declared = {"unit": UNIT, "mechanism": MECHANISM, "epsilon": measured.epsilon, "alpha": ALPHA} | declaration
    ledger_id = ledger.record(cur, analyst, query, mechanism=MECHANISM, epsilon=measured.epsilon, details=declared)
    return Release(ledger_id, analyst, query, measured.epsilon, cells, declared, left + asked - measured.epsilon, key_names)


def kpi_figures(bounds: ReleaseSettings) -> dict[str, Sum | None]:
    """The daily KPIs' figures: the people of a cell and their clamped events, purchases and revenue."""
    return {
        "people": COUNT,
        "events": Sum("events", bounds.max_events_per_day),
        "purchases": Sum("purchases", bounds.max_purchases_per_day),
        "revenue_cents": Sum("revenue_cents", bounds.max_spend_per_day * 100),
    }


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
    schema = {"event_date": pl.Date, "country": pl.String, "events": pl.Int64, "purchases": pl.Int64, "revenue_cents": pl.Int64}
    measured = measure(
        _rows(cur, BOUNDED_DAYS, params, schema),
        public_keys(first, last, bounds.countries),
        contributions=bounds.max_days,
        epsilon=epsilon,
        figures=kpi_figures(bounds),
    )
    accuracy, scales = measured.accuracy, measured.scale
    cells: dict[Key, dict[str, Figure]] = {}
    for row in measured.rows.iter_rows(named=True):
        cells[(row["event_date"], row["country"])] = {
            "people": Figure(float(row["people"]), accuracy["people"]),
            "events": Figure(float(row["events"]), accuracy["events"]),
            "purchases": Figure(float(row["purchases"]), accuracy["purchases"]),
            "revenue": Figure(row["revenue_cents"] / 100, accuracy["revenue_cents"] / 100),
        }
    declaration = {
        "bounds": {
            "days_per_person": bounds.max_days,
            "events_per_day": [0, bounds.max_events_per_day],
            "purchases_per_day": [0, bounds.max_purchases_per_day],
            "revenue_per_day_eur": [0, bounds.max_spend_per_day],
        },
        "scale": {kpi: scales[kpi] for kpi in ("people", "events", "purchases")} | {"revenue_eur": scales["revenue_cents"] / 100},
        "keys": {"countries": list(bounds.countries), "days": [first.isoformat(), last.isoformat()]},
    }
    return _publish(
        cur, analyst, QUERY_DAILY_KPIS, asked=epsilon, left=left, measured=measured, cells=cells,
        declaration=declaration, key_names=("day", "country"),
    )  # fmt: skip


def release_funnel(cur: db.Cursor, analyst: str, *, first: date, last: date, epsilon: float, bounds: ReleaseSettings) -> Release:
    """Release the ordered funnel: per day, the people who reached each step (a page view, then an
    add to cart, then a purchase, in that order: analytics_person_days.funnel_step). The cells are
    the days times the three steps; a person-day that reached step n counts in steps 1..n, so a
    person is up to 3 x max_days rows (their earliest max_days days). Same order of work and
    refusals as :func:`release_daily_kpis`."""
    check_range(first, last)
    left = ledger.reserve(cur, analyst, epsilon)
    rows = _rows(
        cur,
        FUNNEL_ROWS,
        {"first": first, "last": last, "max_days": bounds.max_days},
        {"event_date": pl.Date, "step": pl.String},
    )
    contributions = len(FUNNEL_STEPS) * bounds.max_days
    keys = _product({"event_date": (pl.Date, _days(first, last)), "step": (pl.String, list(FUNNEL_STEPS))})
    measured = measure(rows, keys, contributions=contributions, epsilon=epsilon, figures={"people": COUNT})
    cells: dict[Key, dict[str, Figure]] = {
        (row["event_date"], row["step"]): {"people": Figure(float(row["people"]), measured.accuracy["people"])}
        for row in measured.rows.iter_rows(named=True)
    }
    declaration = {
        "bounds": {"days_per_person": bounds.max_days, "rows_per_person": contributions},
        "scale": measured.scale,
        "keys": {"steps": list(FUNNEL_STEPS), "days": [first.isoformat(), last.isoformat()]},
    }
    return _publish(
        cur, analyst, QUERY_FUNNEL, asked=epsilon, left=left, measured=measured, cells=cells,
        declaration=declaration, key_names=("day", "step"),
    )  # fmt: skip


def release_retention(
    cur: db.Cursor, analyst: str, *, first: date, last: date, epsilon: float, bounds: ReleaseSettings
) -> Release:
    """Release retention by signup-week cohort: for each week (a Monday, UTC) holding a day from
    ``first`` to ``last``, the people who signed up in it (``signed_up``) and, for each week
    offset 0 .. retention_weeks - 1, those of them active in that week after it.

    The cells are the calendar weeks times the offsets (public). A person has one signup week, so
    the cohorts are disjoint (parallel composition across cohorts); within their cohort a person is
    up to 1 + retention_weeks rows (their size row and one per active week), the bound declared.
    Weeks not begun yet are released too (noise around zero): which weeks exist is the calendar's."""
    check_range(first, last)
    left = ledger.reserve(cur, analyst, epsilon)
    first_week = first - timedelta(days=first.weekday())
    last_week = last - timedelta(days=last.weekday())
    weeks = bounds.retention_weeks
    rows = _rows(
        cur,
        RETENTION_ROWS,
        {"first_week": first_week, "last_week": last_week, "weeks": weeks},
        {"cohort": pl.Date, "week_offset": pl.Int64},
    )
    offsets = [SIGNED_UP, *range(weeks)]
    keys = _product({"cohort": (pl.Date, _days(first_week, last_week, 7)), "week_offset": (pl.Int64, offsets)})
    measured = measure(rows, keys, contributions=weeks + 1, epsilon=epsilon, figures={"people": COUNT})
    cells: dict[Key, dict[str, Figure]] = {}
    for row in measured.rows.iter_rows(named=True):
        offset = "signed_up" if row["week_offset"] == SIGNED_UP else int(row["week_offset"])
        cells[(row["cohort"], offset)] = {"people": Figure(float(row["people"]), measured.accuracy["people"])}
    declaration = {
        "bounds": {"rows_per_person": weeks + 1, "weeks_after_signup": weeks},
        "scale": measured.scale,
        "keys": {"cohorts": [first_week.isoformat(), last_week.isoformat()], "week_offsets": ["signed_up", 0, weeks - 1]},
        "composition": "parallel across cohorts (a person has one signup week)",
    }
    return _publish(
        cur, analyst, QUERY_RETENTION, asked=epsilon, left=left, measured=measured, cells=cells,
        declaration=declaration, key_names=("cohort", "week_offset"),
    )  # fmt: skip


def release_segment_values(cur: db.Cursor, analyst: str, *, value: str, epsilon: float, bounds: ReleaseSettings) -> Release:
    """Release, for every named RFM segment (public: analytics.rfm_model.SEGMENTS), its size and the
    total and mean of ``value``: ``"monetary"`` (RFM's monetary value, clamped to [0, max_monetary])
    or ``"clv"`` (the lifetime value, clamped to [0, max_clv]; people with a lifetime value but no
    RFM score, who bought nothing in RFM's window, are the segment ``no RFM score``). A person is
    one row of one segment: parallel composition across segments. Same order of work and refusals
    as :func:`release_daily_kpis`."""
    source = SEGMENT_SOURCES.get(value)
    if source is None:
        raise InvalidInput(f"a segment release is of {', '.join(SEGMENT_SOURCES)}, not {value!r}")
    query_name, sql, segments = source
    upper = bounds.max_monetary if value == "monetary" else bounds.max_clv
    left = ledger.reserve(cur, analyst, epsilon)
    rows = _rows(cur, sql, {"upper": upper}, {"segment": pl.String, "cents": pl.Int64})
    keys = _product({"segment": (pl.String, list(segments))})
    measured = measure(
        rows, keys, contributions=1, epsilon=epsilon, figures={"people": COUNT, "total_cents": Sum("cents", upper * 100)}
    )
    acc, half = measured.accuracy, measured.accuracy_half_alpha
    cells: dict[Key, dict[str, Figure]] = {}
    for row in measured.rows.iter_rows(named=True):
        people, total = float(row["people"]), row["total_cents"] / 100
        cells[(row["segment"],)] = {
            "people": Figure(people, acc["people"]),
            "total": Figure(total, acc["total_cents"] / 100),
            "mean": mean(total, half["total_cents"] / 100, people, half["people"], upper),
        }
    declaration = {
        "bounds": {"rows_per_person": 1, f"{value}_eur": [0, upper]},
        "scale": {"people": measured.scale["people"], "total_eur": measured.scale["total_cents"] / 100},
        "keys": {"segments": list(segments)},
        "composition": "parallel across segments (a person is in one)",
        "mean": "total / people, post-processed; its interval holds when both figures' 97.5 % intervals do",
    }
    return _publish(
        cur, analyst, query_name, asked=epsilon, left=left, measured=measured, cells=cells,
        declaration=declaration, key_names=("segment",),
    )  # fmt: skip
