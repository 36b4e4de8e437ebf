"""Checking a lifetime-value fit the way it is used: fit on a calibration period, predict a holdout.

People's purchases are summarised per day (the platform keeps per-person-day summaries), so the
model's purchase is a *purchase day*: several orders on one day count once, the convention of the
BG/NBD literature for daily data (and of the lifetimes/pymc-marketing ``rfm_summary``). The first
purchase day starts a person's clock and is not a repeat purchase; its value is left out of the
mean spend ``m`` too, as the Gamma-Gamma model is fitted on repeat purchases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np

from analytics.clv_model import Array, Customers


@dataclass(frozen=True)
class PersonDay:
    """One person's purchases on one day (UTC): how many and their total value."""

    person: Hashable
    day: date
    purchases: int
    revenue: float


@dataclass(frozen=True)
class CalibrationHoldout:
    """The calibration summaries of everyone who bought by the calibration's end, and their holdout."""

    people: tuple[Hashable, ...]
    customers: Customers
    holdout_purchases: Array
    holdout_days: float


def split_calibration_holdout(days: Iterable[PersonDay], *, calibration_end: date, holdout_end: date) -> CalibrationHoldout:
    """Summarise purchase days up to and including ``calibration_end``; count those after it up to ``holdout_end``.

    Ages are measured to the end of ``calibration_end`` (a first purchase on that day has age 1 day:
    the whole day was observed), recency in whole days from the first purchase day. People whose
    first purchase falls after the calibration period are not in the result: the model knows
    nothing of them. People are returned in sorted order of their keys' ``repr`` (deterministic for
    any key type).
    """
    if holdout_end <= calibration_end:
        raise ValueError("the holdout must end after the calibration period")
    calibration: dict[Hashable, dict[date, float]] = defaultdict(dict)
    holdout: dict[Hashable, set[date]] = defaultdict(set)
    for row in days:
        if row.purchases <= 0:
            continue
        if row.day <= calibration_end:
            revenue = calibration[row.person]
            revenue[row.day] = revenue.get(row.day, 0.0) + row.revenue
        elif row.day <= holdout_end:
            holdout[row.person].add(row.day)
    people = tuple(sorted(calibration, key=repr))
    n = len(people)
    x, t_x, age, m, actual = (np.zeros(n) for _ in range(5))
    for i, person in enumerate(people):
        by_day = calibration[person]
        ordered = sorted(by_day)
        first = ordered[0]
        x[i] = len(ordered) - 1
        t_x[i] = (ordered[-1] - first).days
        age[i] = (calibration_end - first).days + 1
        if x[i] > 0:
            m[i] = sum(by_day[d] for d in ordered[1:]) / x[i]
        actual[i] = len(holdout.get(person, ()))
    return CalibrationHoldout(
        people=people,
        customers=Customers(x=x, t_x=t_x, age=age, m=m),
        holdout_purchases=actual,
        holdout_days=float((holdout_end - calibration_end).days),
    )


def naive_holdout(customers: Customers, holdout_days: float) -> Array:
    """The baseline: each person keeps buying at their calibration rate (repeat purchases per day of age)."""
    rate = np.divide(customers.x, customers.age, out=np.zeros_like(customers.x), where=customers.age > 0)
    result: Array = rate * holdout_days
    return result


@dataclass(frozen=True)
class HoldoutComparison:
    """Predicted against actual holdout purchases, in total and per person, beside the naive baseline."""

    people: int
    actual_total: float
    predicted_total: float
    naive_total: float
    mae: float
    naive_mae: float

    @property
    def total_error(self) -> float:
        """Relative error of the predicted total (0.05 = 5 % too many)."""
        return (self.predicted_total - self.actual_total) / self.actual_total

    @property
    def mae_reduction(self) -> float:
        """How much lower the model's per-person mean absolute error is than the baseline's (0.3 = 30 %)."""
        return 1 - self.mae / self.naive_mae


def compare_holdout(predicted: Array, actual: Array, naive: Array) -> HoldoutComparison:
    """Totals and per-person mean absolute errors of the model and the naive baseline."""
    if not predicted.shape == actual.shape == naive.shape:
        raise ValueError("predicted, actual and naive must describe the same people")
    if actual.size == 0 or actual.sum() == 0:
        raise ValueError("the holdout has no purchases to compare with")
    return HoldoutComparison(
        people=int(actual.size),
        actual_total=float(actual.sum()),
        predicted_total=float(predicted.sum()),
        naive_total=float(naive.sum()),
        mae=float(np.mean(np.abs(predicted - actual))),
        naive_mae=float(np.mean(np.abs(naive - actual))),
    )
