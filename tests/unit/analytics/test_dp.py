"""The differentially private release path (analytics.dp) without services: noise comes from
OpenDP only, a count's 95 % interval at epsilon 1 is OpenDP's +-3.4, and the stated intervals hold
over repeated releases of a fixed data set."""

from __future__ import annotations

import ast
from datetime import date

import opendp.prelude as dp
import polars as pl
import pytest

from analytics import dp as release_dp
from core.config import PROJECT_ROOT, ReleaseSettings
from core.errors import InvalidInput

# The modules that make, shape or serve a release (a figure leaving the pseudonymous zone).
RELEASE_MODULES = (
    "analytics/dp.py",
    "analytics/ledger.py",
    "analytics/release.py",
    "analytics/api/service.py",
    "analytics/api/params.py",
    "reports/business.py",
    "reports/daily_report.py",
)
NOISE_MODULES = {"random", "secrets", "numpy", "scipy", "torch"}


@pytest.mark.parametrize("path", RELEASE_MODULES)
def test_the_release_path_draws_no_noise_of_its_own(path: str) -> None:
    """No module of the release path imports a random number source: OpenDP adds every noise."""
    tree = ast.parse((PROJECT_ROOT / path).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & NOISE_MODULES, f"{path} imports {sorted(imported & NOISE_MODULES)}"
    features = {
        str(arg.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "enable_features"
        for arg in node.args
        if isinstance(arg, ast.Constant)
    }
    assert features <= {"contrib"}, f"{path} enables {sorted(features)}: OpenDP's floating-point opt-in stays off"


def single_count(epsilon: float) -> object:
    rows = pl.LazyFrame({"x": [1] * 100})
    context = dp.Context.compositor(
        data=rows, privacy_unit=dp.unit_of(contributions=1), privacy_loss=dp.loss_of(epsilon=epsilon), split_evenly_over=1
    )
    return context.query().select(release_dp._dp(pl.len()).noise())


def test_a_count_at_epsilon_one_is_within_about_3_4_with_95_percent_confidence() -> None:
    summary = single_count(1.0).summarize(alpha=0.05)  # type: ignore[attr-defined]
    scale, half_width = summary["scale"][0], summary["accuracy"][0]
    assert scale == pytest.approx(1.0)
    assert half_width == pytest.approx(dp.discrete_laplacian_scale_to_accuracy(scale, 0.05))
    assert 3.3 < half_width < 3.5  # the documented +-3.4


def test_the_stated_intervals_hold_over_repeated_releases() -> None:
    """200 releases of a fixed data set: about 95 % of the figures fall within their intervals
    (at least 85 % asked: with 200 x 4 x 2 figures a miss of that size has odds far below 1e-9)."""
    bounds = ReleaseSettings(max_days=2, max_events_per_day=5, max_purchases_per_day=2, max_spend_per_day=100)
    days = [date(2026, 3, 1), date(2026, 3, 2)]
    people = 300
    rows = pl.LazyFrame(
        {
            "event_date": [d for _ in range(people) for d in days],
            "country": ["DE" if p % 3 else "FR" for p in range(people) for _ in days],
            "events": [p % 6 for p in range(people) for _ in days],
            "purchases": [p % 2 for p in range(people) for _ in days],
            "revenue_cents": [(p % 2) * 4_000 for p in range(people) for _ in days],
        }
    )
    truth = (
        rows.group_by(["event_date", "country"])
        .agg(
            pl.len().alias("people"),
            pl.col("events").clip(0, 5).sum(),
            pl.col("purchases").sum(),
            pl.col("revenue_cents").sum(),
        )
        .collect()
    )
    expected = {(r["event_date"], r["country"]): r for r in truth.iter_rows(named=True)}
    keys = release_dp.public_keys(days[0], days[1], ("DE", "FR"))
    figures = release_dp.kpi_figures(bounds)
    accuracy = release_dp.measure(rows, keys, contributions=bounds.max_days, epsilon=1.0, figures=figures).accuracy
    _, measurement = release_dp.plan(rows, keys, contributions=bounds.max_days, epsilon=1.0, figures=figures)
    within = total = 0
    for _ in range(200):
        for row in measurement(rows).collect().iter_rows(named=True):
            cell = expected[(row["event_date"], row["country"])]
            for kpi in ("people", "events", "purchases", "revenue_cents"):
                total += 1
                within += abs(row[kpi] - cell[kpi]) <= accuracy[kpi]
    assert within / total >= 0.85, f"{within}/{total} within their 95 % intervals"
    assert within < total, "noise was added"


def test_the_public_keys_are_every_day_times_every_country() -> None:
    keys = release_dp.public_keys(date(2026, 1, 30), date(2026, 2, 2), ("DE", "FR", "IT"))
    assert keys.height == 4 * 3
    assert set(keys["country"]) == {"DE", "FR", "IT"}


def test_a_reversed_or_too_long_range_is_refused() -> None:
    with pytest.raises(InvalidInput):
        release_dp.check_range(date(2026, 2, 2), date(2026, 2, 1))
    with pytest.raises(InvalidInput):
        release_dp.check_range(date(2024, 1, 1), date(2026, 1, 1))


def test_a_segments_mean_interval_holds_over_repeated_releases() -> None:
    """The mean of a segment (total / people, post-processed) falls within its stated interval in
    at least 85 % of 200 releases (it is built to hold in 95 % or more)."""
    sizes = {"champions": 400, "lost": 150, "new customers": 0}
    cents = {"champions": 25_000, "lost": 3_000, "new customers": 0}
    rows = pl.LazyFrame(
        {
            "segment": [s for s, n in sizes.items() for _ in range(n)],
            "cents": [cents[s] for s, n in sizes.items() for _ in range(n)],
        },
        schema={"segment": pl.String, "cents": pl.Int64},
    )
    keys = pl.DataFrame({"segment": list(sizes)})
    figures = {"people": release_dp.COUNT, "total_cents": release_dp.Sum("cents", 600 * 100)}
    measured = release_dp.measure(rows, keys, contributions=1, epsilon=1.0, figures=figures)
    assert set(measured.rows["segment"]) == set(sizes), "every public segment, the empty one too"
    half = measured.accuracy_half_alpha
    _, measurement = release_dp.plan(rows, keys, contributions=1, epsilon=1.0, figures=figures)
    within = total = 0
    for _ in range(200):
        for row in measurement(rows).collect().iter_rows(named=True):
            if not sizes[row["segment"]]:
                continue
            got = release_dp.mean(row["total_cents"] / 100, half["total_cents"] / 100, row["people"], half["people"], 600)
            total += 1
            within += got.low <= cents[row["segment"]] / 100 <= got.high
    assert within / total >= 0.85, f"{within}/{total} means within their intervals"


def test_a_mean_stays_within_the_clamping_bounds() -> None:
    for total, people in ((-50.0, 3.0), (10_000.0, 1.0), (5.0, 0.0), (5.0, -4.0)):
        got = release_dp.mean(total, 10.0, people, 3.0, 600)
        assert 0 <= got.value <= 600 and got.low >= -600 and got.high <= 1200


def one_cell_rows(people: int) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"event_date": [date(2026, 3, 1)] * people, "country": ["DE"] * people, "events": [1] * people},
        schema={"event_date": pl.Date, "country": pl.String, "events": pl.Int64},
    )


def test_a_planned_measurement_is_reused_for_its_shape_and_runs_on_the_new_rows() -> None:
    """The second release of a shape plans nothing: it states what a fresh plan states and
    releases the new rows (5,000 people in the cell, not the first release's 10)."""
    keys = release_dp.public_keys(date(2026, 3, 1), date(2026, 3, 2), ("DE", "FR"))
    figures: dict[str, release_dp.Sum | None] = {"people": release_dp.COUNT, "events": release_dp.Sum("events", 5)}
    release_dp.clear_plans()
    fresh = release_dp.measure(one_cell_rows(10), keys, contributions=2, epsilon=1.0, figures=figures)
    assert len(release_dp._plans) == 1
    cached = release_dp.measure(one_cell_rows(5_000), keys, contributions=2, epsilon=1.0, figures=figures)
    assert len(release_dp._plans) == 1, "the same shape is planned once"
    assert (cached.accuracy, cached.accuracy_half_alpha, cached.scale, cached.epsilon) == (
        fresh.accuracy,
        fresh.accuracy_half_alpha,
        fresh.scale,
        fresh.epsilon,
    )
    assert cached.epsilon == pytest.approx(1.0)
    people = {(r["event_date"], r["country"]): r["people"] for r in cached.rows.iter_rows(named=True)}
    assert abs(people[(date(2026, 3, 1), "DE")] - 5_000) <= 10 * cached.accuracy["people"], "the new rows were released"
    other = release_dp.measure(one_cell_rows(10), keys, contributions=2, epsilon=0.5, figures=figures)
    assert len(release_dp._plans) == 2, "another epsilon is another shape"
    assert other.epsilon == pytest.approx(0.5) and other.scale["people"] > fresh.scale["people"]
    release_dp.clear_plans()
