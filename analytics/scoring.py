"""Scoring everybody: RFM scores and lifetime values from the customer histories (analytics.customers),
stored per person (analytics.scores), and what may leave the pseudonymous zone about them.

Each scoring runs in the caller's transaction as the analytics_modeller login, holding the erasure
lock shared (as a summaries build does): an erasure waits for it, or it reads the re-keyed
summaries, so no score is ever written for a person erased meanwhile. Nobody whose analytics
consent is withdrawn now is scored or fitted on (``profiled``): an objection (Art. 21) and a
restriction (Art. 18) are such withdrawals, and the privacy processor, which deletes their scores,
holds the same lock exclusively. What this module returns for output is sizes, totals and means of
groups, with the reports' small-cell rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from analytics import clv_model, clv_validation, customers, rfm_model, scores, summaries
from analytics.clv_chart import FrequencyGroup, calibration_holdout_groups
from analytics.release import suppressed_cells
from core import consent, db, locks
from core.errors import InvalidInput

logger = logging.getLogger(__name__)

# Expected purchases and CLV over the next year: the horizon the business asks about.
HORIZON_DAYS = 365
# Upper bounds of the CLV distribution's buckets (in the events' currency); the last is open.
CLV_BUCKETS = (10, 25, 50, 100, 250, 500)


class NotEnoughData(InvalidInput):
    """Nothing to score, or too few buyers to fit the lifetime-value models."""


def last_summarised(cur: db.Cursor) -> date:
    """The last summarised day, the default as-of day; NotEnoughData without any."""
    last = summaries.coverage(cur).last
    if last is None:
        raise NotEnoughData("no day is summarised yet: run `python -m batch.batch_metrics --changed` first")
    return last


def check_as_of(cur: db.Cursor, as_of: date) -> None:
    """An as-of day must be summarised already (a later one would score days not closed yet)."""
    last = last_summarised(cur)
    if as_of > last:
        raise InvalidInput(f"--as-of {as_of} is after the last summarised day, {last}")


def not_profiled(cur: db.Cursor) -> set[str]:
    """The people whose analytics consent is withdrawn now: by an objection (Art. 21), a
    restriction in force (Art. 18; its withdrawal stands until a DPO lifts it), or their own
    withdrawal. Their summaries still count in the aggregates (earlier events stay counted), but
    no model scores them or is fitted on them until they grant consent again."""
    cur.execute("SELECT user_id::text FROM consent_current WHERE purpose = %s AND NOT granted", (consent.ANALYTICS,))
    return {user_id for (user_id,) in cur.fetchall()}


def profiled(cur: db.Cursor, as_of: date, calibration_end: date | None = None) -> list[customers.Customer]:
    """The customer histories the models may use: every buyer's (analytics.customers) but those
    ``not_profiled``. Read after the erasure lock is taken, so an objection or a restriction
    committed before the scoring is seen by it."""
    stopped = not_profiled(cur)
    return [c for c in customers.customers(cur, as_of, calibration_end) if c.user_id not in stopped]


# --- RFM ------------------------------------------------------------------------------------------


def rfm_measures(people: Sequence[customers.Customer]) -> list[rfm_model.Rfm]:
    """Each buyer's RFM measures: days since the last purchase (T minus recency, both from the first
    purchase), purchases, and their total value."""
    return [rfm_model.Rfm(c.age_days - c.recency_days, c.purchases, float(c.total_revenue)) for c in people]


@dataclass(frozen=True)
class RfmResult:
    """A scoring: its day, how many people were scored, the segment table (k-rule applied) and the time it took."""

    as_of: date
    people: int
    segments: list[rfm_model.SegmentSummary]
    seconds: float


def score_rfm(cur: db.Cursor, as_of: date, *, k: int) -> RfmResult:
    """Score every buyer who may be ``profiled`` as of ``as_of`` and replace the stored RFM rows, in the caller's transaction."""
    started = time.monotonic()
    locks.take(cur, locks.ERASURE)
    people = profiled(cur, as_of)
    measures = rfm_measures(people)
    scored = rfm_model.score(measures)
    rows = [
        scores.RfmRow(c.user_id, int(m.recency_days), m.frequency, c.total_revenue, s.recency, s.frequency, s.monetary, s.segment)
        for c, m, s in zip(people, measures, scored, strict=True)
    ]
    scores.replace_rfm(cur, as_of, rows)
    elapsed = time.monotonic() - started
    logger.info("RFM as of %s: %d people scored in %.2f s", as_of, len(rows), elapsed)
    return RfmResult(as_of, len(rows), rfm_model.segment_summary(measures, scored, k=k), elapsed)


# --- Lifetime value -------------------------------------------------------------------------------


def model_inputs(people: Sequence[customers.Customer]) -> clv_model.Customers:
    """The BG/NBD and Gamma-Gamma inputs of these buyers: repeat purchase days x, recency t_x, age T
    (days from the first purchase) and the mean value m of a repeat purchase day (0 without one)."""
    return clv_model.Customers(
        x=np.array([c.frequency for c in people], dtype=np.float64),
        t_x=np.array([c.recency_days for c in people], dtype=np.float64),
        age=np.array([c.age_days for c in people], dtype=np.float64),
        m=np.array([0.0 if c.repeat_mean_spend is None else float(c.repeat_mean_spend) for c in people], dtype=np.float64),
    )


# A fitted parameter: its estimate and its 95 % interval's ends (None, None: the fit gives none).
Parameter = tuple[float, float | None, float | None]


@dataclass(frozen=True)
class Models:
    """Both fits, on the same buyers."""

    bgnbd: clv_model.Fit
    gamma_gamma: clv_model.Fit
    people: int
    repeat_buyers: int

    def parameters(self) -> dict[str, Parameter]:
        """Name -> (estimate, low, high); low and high None where the fit gives no interval."""
        return {e.name: (e.value, e.low, e.high) for e in (*self.bgnbd.estimates, *self.gamma_gamma.estimates)}

    @property
    def intervals(self) -> bool:
        """Whether both fits have their 95 % intervals (clv_model: none where the data cannot identify a parameter)."""
        return self.bgnbd.intervals and self.gamma_gamma.intervals


def fit_models(inputs: clv_model.Customers, as_of: date) -> Models:
    """Fit BG/NBD and Gamma-Gamma; NotEnoughData (one line) when the data cannot identify them."""
    people, repeat = int(inputs.x.size), int(np.sum(inputs.x > 0))
    try:
        bgnbd = clv_model.fit_bgnbd(inputs.x, inputs.t_x, inputs.age)
        gamma_gamma = clv_model.fit_gamma_gamma(inputs.x, inputs.m)
    except clv_model.FitError as e:
        raise NotEnoughData(
            f"cannot fit the lifetime-value models on the {people} buyers by {as_of} ({repeat} with a repeat purchase): {e}"
        ) from e
    if gamma_gamma["q"].value <= 1:
        raise NotEnoughData(
            f"the spend model fitted on {repeat} repeat buyers by {as_of} has no finite mean (q <= 1): too few repeat buyers"
        )
    return Models(bgnbd, gamma_gamma, people, repeat)


@dataclass(frozen=True)
class ClvBucket:
    """People whose CLV lies in [low, high) (high None: no upper bound), their total and mean CLV; None where suppressed."""

    low: float
    high: float | None
    people: int | None
    total: float | None
    mean: float | None


@dataclass(frozen=True)
class ClvDistribution:
    """What may leave the zone about the lifetime values: totals and buckets, the k-rule applied."""

    people: int | None
    total: float | None
    mean: float | None
    buckets: list[ClvBucket]


def clv_distribution(clv: Sequence[float] | np.ndarray, *, k: int) -> ClvDistribution:
    """People, total and mean CLV per bucket (CLV_BUCKETS), with the reports' small-cell rule; the
    overall figures too are withheld when fewer than ``k`` people are scored."""
    values = np.asarray(clv, dtype=np.float64)
    bounds = (0.0, *map(float, CLV_BUCKETS))
    index = np.searchsorted(np.asarray(CLV_BUCKETS, dtype=np.float64), values, side="right")
    sizes = {i: int(np.sum(index == i)) for i in range(len(bounds))}
    hidden = suppressed_cells(sizes, k)
    buckets = []
    for i, low in enumerate(bounds):
        high = bounds[i + 1] if i + 1 < len(bounds) else None
        n = sizes[i]
        if i in hidden:
            buckets.append(ClvBucket(low, high, None, None, None))
        else:
            total = float(values[index == i].sum())
            buckets.append(ClvBucket(low, high, n, total, total / n if n else None))
    if 0 < values.size < k:
        return ClvDistribution(None, None, None, buckets)
    total = float(values.sum())
    return ClvDistribution(int(values.size), total, total / values.size if values.size else None, buckets)


@dataclass(frozen=True)
class ClvResult:
    """A full fit: its stored id, the models, the CLV distribution and the time the fit and storage took."""

    fit_id: int
    as_of: date
    horizon_days: int
    models: Models
    distribution: ClvDistribution
    seconds: float


def score_clv(cur: db.Cursor, as_of: date, *, k: int, horizon_days: int = HORIZON_DAYS) -> ClvResult:
    """Fit on the history up to ``as_of`` of every buyer who may be ``profiled``, store the fit and replace the per-person
    predictions (expected purchases, P(alive), expected spend, CLV over ``horizon_days``)."""
    started = time.monotonic()
    locks.take(cur, locks.ERASURE)
    people = profiled(cur, as_of)
    inputs = model_inputs(people)
    models = fit_models(inputs, as_of)
    predictions = clv_model.predict(models.bgnbd.bgnbd(), models.gamma_gamma.gamma_gamma(), inputs, horizon_days=horizon_days)
    fit_id = scores.insert_fit(
        cur, scores.FitRow(as_of, None, horizon_days, models.people, models.repeat_buyers, models.parameters())
    )
    rows = [
        scores.ClvRow(
            c.user_id,
            c.frequency,
            c.recency_days,
            c.age_days,
            c.repeat_mean_spend,
            float(predictions.probability_alive[i]),
            float(predictions.expected_purchases[i]),
            float(predictions.expected_spend[i]),
            float(predictions.clv[i]),
        )
        for i, c in enumerate(people)
    ]
    scores.replace_clv(cur, fit_id, as_of, rows)
    elapsed = time.monotonic() - started
    logger.info("lifetime value as of %s: fit %d on %d people, stored in %.2f s", as_of, fit_id, len(rows), elapsed)
    return ClvResult(fit_id, as_of, horizon_days, models, clv_distribution(predictions.clv, k=k), elapsed)


@dataclass(frozen=True)
class ValidationResult:
    """A calibration/holdout validation: the fit on the calibration period, the comparison, the chart's groups."""

    fit_id: int
    as_of: date
    calibration_end: date
    holdout_days: int
    models: Models
    comparison: clv_validation.HoldoutComparison
    groups: list[FrequencyGroup]


def validate_clv(cur: db.Cursor, as_of: date, holdout_days: int, *, k: int) -> ValidationResult:
    """Fit on the days up to ``as_of - holdout_days``, predict each buyer's purchase days in the
    holdout after it (up to ``as_of``) and compare with what they did, beside the naive baseline
    "same rate as before". Recorded as a fit with its holdout figures; the stored per-person
    predictions are left as they are (they come from the full fit)."""
    if holdout_days < 1:
        raise InvalidInput("--holdout-days must be at least 1")
    calibration_end = as_of - timedelta(days=holdout_days)
    first = summaries.coverage(cur).first
    if first is None or calibration_end < first:
        raise NotEnoughData(
            f"a holdout of {holdout_days} days before {as_of} leaves no calibration period: the summaries start on {first}"
        )
    locks.take(cur, locks.ERASURE)
    people = profiled(cur, as_of, calibration_end)
    inputs = model_inputs(people)
    models = fit_models(inputs, calibration_end)
    predicted = clv_model.expected_purchases(models.bgnbd.bgnbd(), inputs.x, inputs.t_x, inputs.age, t=float(holdout_days))
    actual = np.array([c.holdout_purchase_days for c in people], dtype=np.float64)
    naive = clv_validation.naive_holdout(inputs, float(holdout_days))
    try:
        comparison = clv_validation.compare_holdout(predicted, actual, naive)
    except ValueError as e:
        raise NotEnoughData(f"nobody bought in the {holdout_days} days after {calibration_end}: nothing to compare with") from e
    holdout = {
        "actual": comparison.actual_total,
        "predicted": comparison.predicted_total,
        "naive": comparison.naive_total,
        "mae": comparison.mae,
        "naive_mae": comparison.naive_mae,
    }
    fit_id = scores.insert_fit(
        cur,
        scores.FitRow(as_of, calibration_end, holdout_days, models.people, models.repeat_buyers, models.parameters(), holdout),
    )
    groups = calibration_holdout_groups(inputs.x, actual, predicted, k=k)
    return ValidationResult(fit_id, as_of, calibration_end, holdout_days, models, comparison, groups)


def money(value: Decimal | float | None) -> float | None:
    """A money figure rounded to the cent, for output."""
    return None if value is None else round(float(value), 2)


# --- The stored scorings, as the reports read them --------------------------------------------------


def derived(parameters: Mapping[str, Parameter]) -> dict[str, float]:
    """The fitted parameters (name -> value, low, high) read as a business reads them: purchase days
    a year while active, the chance of dropping out after a repeat purchase, the mean purchase value."""
    v = {name: value for name, (value, _low, _high) in parameters.items()}
    return {
        "mean_purchase_rate_per_year": 365 * v["r"] / v["alpha"],
        "mean_dropout_chance_per_repeat_purchase": v["a"] / (v["a"] + v["b"]),
        "mean_purchase_value": v["p"] * v["gamma"] / (v["q"] - 1),
    }


@dataclass(frozen=True)
class StoredRfm:
    """The stored RFM scoring, without user ids: its day and each person's measures and scores."""

    as_of: date
    measures: list[rfm_model.Rfm]
    scores: list[rfm_model.RfmScore]

    @property
    def people(self) -> int:
        return len(self.measures)

    def segments(self, *, k: int) -> list[rfm_model.SegmentSummary]:
        """The segment table (``rfm_model.segment_summary``: the k-rule applied)."""
        return rfm_model.segment_summary(self.measures, self.scores, k=k)


def stored_rfm(cur: db.Cursor) -> StoredRfm | None:
    """The stored RFM scores as they are (never a new scoring); None while nothing is stored. Reads
    no user id."""
    cur.execute(
        "SELECT as_of, recency_days, frequency, monetary, r_score, f_score, m_score, segment FROM analytics_rfm_scores"
        " ORDER BY user_id"
    )
    rows = cur.fetchall()
    if not rows:
        return None
    measures = [rfm_model.Rfm(recency, frequency, float(monetary)) for _d, recency, frequency, monetary, *_s in rows]
    scored = [rfm_model.RfmScore(r, f, m, segment) for *_x, r, f, m, segment in rows]
    return StoredRfm(max(row[0] for row in rows), measures, scored)


@dataclass(frozen=True)
class StoredClv:
    """The stored lifetime values, without user ids, and the full fit that made them."""

    fit_id: int
    as_of: date
    horizon_days: int
    people: int
    repeat_buyers: int
    parameters: Mapping[str, Parameter]
    clv: list[float]

    def distribution(self, *, k: int) -> ClvDistribution:
        """Buyers, total and mean CLV per bucket (``clv_distribution``: the k-rule applied)."""
        return clv_distribution(self.clv, k=k)


def stored_clv(cur: db.Cursor) -> StoredClv | None:
    """The stored lifetime values (never a new fit) and their fit; None while nothing is stored.
    Reads no user id."""
    cur.execute("SELECT fit_id, clv FROM analytics_clv_scores ORDER BY user_id")
    rows = cur.fetchall()
    if not rows:
        return None
    fit_id = int(rows[0][0])
    columns = [f"{name}{end}" for name in scores.PARAMETERS for end in ("", "_low", "_high")]
    # The column names are scores.PARAMETERS, constants, never input.
    cur.execute(
        f"SELECT as_of, horizon_days, people, repeat_buyers, {', '.join(columns)} FROM analytics_clv_fits WHERE id = %s",  # noqa: S608
        (fit_id,),
    )
    fit = cur.fetchone()
    if fit is None:  # fits are kept and referenced: only a damaged database lacks it
        raise InvalidInput(f"the stored lifetime values name fit {fit_id}, which analytics_clv_fits does not hold")
    as_of, horizon_days, people, repeat_buyers, *values = fit
    parameters = {
        name: (float(values[i]), scores.stored_bound(values[i + 1]), scores.stored_bound(values[i + 2]))
        for name, i in zip(scores.PARAMETERS, range(0, len(values), 3), strict=True)
    }
    clv = [float(value) for _f, value in rows]
    return StoredClv(fit_id, as_of, int(horizon_days), int(people), int(repeat_buyers), parameters, clv)
