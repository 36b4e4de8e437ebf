"""Bounds chosen from the data and the utility figures of ``python -m bench.utility``."""

from __future__ import annotations

import pytest

from analytics import release_tuning as tuning


def test_a_quantile_is_the_nearest_rank() -> None:
    values = list(range(1, 101))
    assert tuning.quantile(values, 0.99) == 99
    assert tuning.quantile(values, 0.5) == 50
    assert tuning.quantile([], 0.99) == 0


@pytest.mark.parametrize(
    ("value", "rounded"), [(0.3, 1), (1, 1), (3, 5), (11, 20), (23, 25), (120.2, 200), (263.09, 500), (26, 50)]
)
def test_a_bound_is_rounded_up_to_a_round_number(value: float, rounded: int) -> None:
    assert tuning.round_up(value) == rounded
    assert tuning.round_up(value) >= value


def test_bounds_keep_the_99th_percentile_of_the_days_with_any_of_the_figure() -> None:
    # 199 ordinary days and one day of a very busy person: the busy one is clamped, nobody else.
    days = [(5, 1, 40.0)] * 150 + [(3, 0, 0.0)] * 49 + [(900, 30, 5000.0)]
    chosen = tuning.choose_bounds(days)
    assert (chosen.events, chosen.purchases, chosen.spend) == (5, 1, 50)
    assert chosen.kept == {"events": 0.995, "purchases": 0.995, "spend": 0.995}


def test_relative_error_is_the_median_over_cells_with_something_in_them() -> None:
    true = {"a": 100.0, "b": 10.0, "c": 0.0, "d": 50.0}
    noisy = {"a": 110.0, "b": 10.0, "c": 7.0, "d": 40.0}
    assert tuning.relative_error(noisy, true) == pytest.approx(0.1)
    assert tuning.relative_error(noisy, {"c": 0.0}) is None


def test_public_keys_publish_every_cell_the_k_rule_hides_small_ones() -> None:
    day = {"DE": 150, "FR": 120, "LU": 2, "MT": 0}
    k_rule = tuning.k_rule_published([day], 5)
    # LU is hidden; the next smallest shown (FR) too, so LU cannot be read from a total.
    assert (k_rule.cells, k_rule.published, k_rule.large, k_rule.large_published) == (3, 1, 2, 1)
    dp = tuning.public_keys_published([day])
    assert (dp.cells, dp.published, dp.large, dp.large_published) == (3, 3, 2, 2)
    assert dp.large_published >= k_rule.large_published
