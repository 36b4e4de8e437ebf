"""The history benchmark's plan: what each size loads, removes and erases, and how a ratio passes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bench.history import (
    RECENT_DAYS,
    RETENTION_STEP_DAYS,
    HistoryPlan,
    Operation,
    Result,
    erasure_people,
    flatness,
    reserved_people,
    size_label,
)

TODAY = date(2026, 5, 31)


def test_the_history_is_whole_days_ending_yesterday() -> None:
    plan = HistoryPlan.ending_before(TODAY, 400)
    assert len(plan.days) == 400
    assert plan.days[-1] == plan.measured_day == TODAY - timedelta(days=1)
    assert plan.days[0] == TODAY - timedelta(days=400)
    assert all(b - a == timedelta(days=1) for a, b in zip(plan.days, plan.days[1:], strict=False))


def test_too_short_a_history_is_refused() -> None:
    with pytest.raises(ValueError, match="--days"):
        HistoryPlan.ending_before(TODAY, 2 * RETENTION_STEP_DAYS + RECENT_DAYS)


def test_the_large_size_adds_nothing_to_the_days_whose_work_is_measured() -> None:
    plan = HistoryPlan.ending_before(TODAY, 400)
    first, last = plan.growing()
    growing = [d for d in plan.days if first <= d < last]
    fixed = [*plan.removed(0), *plan.removed(1), *plan.days[-RECENT_DAYS:]]
    assert not set(growing) & set(fixed)
    assert plan.measured_day in fixed and plan.measured_day - timedelta(days=7) in fixed
    assert len(growing) == 400 - len(fixed)


def test_retention_removes_different_oldest_days_at_each_size() -> None:
    plan = HistoryPlan.ending_before(TODAY, 400)
    small, large = plan.removed(0), plan.removed(1)
    assert small == plan.days[:RETENTION_STEP_DAYS]
    assert large == plan.days[RETENTION_STEP_DAYS : 2 * RETENTION_STEP_DAYS]
    assert plan.first_kept(0) == large[0] and plan.first_kept(1) > large[-1]


def test_each_size_erases_different_people_among_the_reserved() -> None:
    one_small, many_small = erasure_people(10_000, 0)
    one_large, many_large = erasure_people(10_000, 1)
    everyone = [*one_small, *many_small, *one_large, *many_large]
    assert len(one_small) == len(one_large) == 1 and len(many_small) == len(many_large) == 10_000
    assert len(set(everyone)) == len(everyone) == reserved_people(10_000)
    assert max(everyone) < reserved_people(10_000)


def test_a_cost_is_flat_up_to_one_and_a_half_times() -> None:
    assert flatness(2.0, 3.0) == (1.5, True)
    ratio, ok = flatness(2.0, 3.2)
    assert ratio == pytest.approx(1.6) and ok is False
    assert flatness(2.0, 1.0) == (0.5, True)


def test_an_operation_without_a_target_shows_its_ratio_and_neither_passes_nor_fails() -> None:
    held = Operation("held", [Result(2.0), Result(8.0)])
    shown = Operation("shown", [Result(2.0), Result(8.0)], targeted=False)
    assert held.ratio == shown.ratio == 4.0
    assert held.passed is False and shown.passed is None


def test_a_missing_measure_has_no_ratio() -> None:
    assert flatness(None, 3.0) == (None, None)
    assert flatness(2.0, None) == (None, None)
    assert flatness(0.0, 3.0) == (None, None)


def test_sizes_are_labelled_as_people_say_them() -> None:
    assert [size_label(n) for n in (10_000_000, 50_000_000, 200_000, 1_234)] == ["10M", "50M", "200k", "1,234"]
