"""Calibration/holdout split, the naive baseline, the comparison and the calibration chart."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from analytics import clv_chart, clv_model
from analytics.clv_model import Customers
from analytics.clv_validation import PersonDay, compare_holdout, naive_holdout, split_calibration_holdout
from analytics.release import suppressed_cells
from tests.clv_simulation import simulate

START = date(2026, 1, 1)
CAL_END = START + timedelta(days=59)
HOLD_END = CAL_END + timedelta(days=30)


def day(n: int) -> date:
    return START + timedelta(days=n)


def test_the_split_counts_purchase_days_and_leaves_the_first_one_out_of_repeats_and_spend() -> None:
    rows = [
        # "ann": first purchase on day 10, two orders on day 20 (one purchase day), one on day 50,
        # then one in the holdout and one after it.
        PersonDay("ann", day(10), 1, 99.0),
        PersonDay("ann", day(20), 2, 30.0),
        PersonDay("ann", day(50), 1, 10.0),
        PersonDay("ann", day(70), 1, 5.0),
        PersonDay("ann", day(95), 1, 5.0),
        # "bob": one purchase on the calibration's last day, none after.
        PersonDay("bob", CAL_END, 1, 7.0),
        # "cyd": first purchase in the holdout: unknown to the model.
        PersonDay("cyd", day(65), 1, 1.0),
        # A day with no purchase is no purchase day.
        PersonDay("bob", day(5), 0, 0.0),
    ]
    split = split_calibration_holdout(rows, calibration_end=CAL_END, holdout_end=HOLD_END)
    assert split.people == ("ann", "bob")
    assert split.holdout_days == (HOLD_END - CAL_END).days
    c = split.customers
    assert list(c.x) == [2, 0]
    assert list(c.t_x) == [(day(50) - day(10)).days, 0]
    assert list(c.age) == [(CAL_END - day(10)).days + 1, 1]
    assert list(c.m) == [(30.0 + 10.0) / 2, 0.0]
    assert list(split.holdout_purchases) == [1, 0]


def test_the_holdout_must_follow_the_calibration() -> None:
    with pytest.raises(ValueError, match="holdout must end after"):
        split_calibration_holdout([], calibration_end=CAL_END, holdout_end=CAL_END)


def test_the_naive_baseline_repeats_each_persons_calibration_rate() -> None:
    customers = Customers(x=np.array([0.0, 3.0, 2.0]), t_x=np.array([0.0, 20.0, 9.0]),
                          age=np.array([10.0, 30.0, 0.0]), m=np.zeros(3))  # fmt: skip
    assert list(naive_holdout(customers, 60.0)) == [0.0, 3 / 30 * 60, 0.0]


def test_the_comparison_reports_totals_and_mean_absolute_errors() -> None:
    actual = np.array([0.0, 2.0, 4.0])
    predicted = np.array([0.5, 2.0, 3.0])
    naive = np.array([0.0, 4.0, 1.0])
    check = compare_holdout(predicted, actual, naive)
    assert check.total_error == pytest.approx((5.5 - 6.0) / 6.0)
    assert check.mae == pytest.approx((0.5 + 0 + 1) / 3)
    assert check.naive_mae == pytest.approx((0 + 2 + 3) / 3)
    assert check.mae_reduction == pytest.approx(1 - 1.5 / 5)


def test_the_calibration_chart_groups_by_frequency_and_hides_small_groups() -> None:
    population = simulate(4_000, seed=11)
    bgnbd = clv_model.fit_bgnbd(population.x, population.t_x, population.age).bgnbd()
    predicted = clv_model.expected_purchases(bgnbd, population.x, population.t_x, population.age, t=population.holdout_days)
    sizes = np.bincount(np.minimum(population.x, clv_chart.TOP_GROUP).astype(np.int64))
    k = int(sizes.min()) + 1  # so that at least the smallest group is suppressed
    groups = clv_chart.calibration_holdout_groups(population.x, population.holdout, predicted, k=k)
    assert [g.label for g in groups] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert [g.people for g in groups] == list(sizes)
    hidden = {i for i, g in enumerate(groups) if g.mean_actual is None}
    assert hidden == suppressed_cells(dict(enumerate(int(n) for n in sizes)), k) != set()
    for index, g in enumerate(groups):
        if index not in hidden:
            members = np.minimum(population.x, clv_chart.TOP_GROUP) == index
            assert g.mean_actual == pytest.approx(population.holdout[members].mean())
            assert g.mean_predicted == pytest.approx(predicted[members].mean())
    png = clv_chart.calibration_holdout_png(groups, holdout_days=population.holdout_days, k=k)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"matplotlib" not in png.lower()
