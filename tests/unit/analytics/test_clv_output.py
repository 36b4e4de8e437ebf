"""A lifetime-value fit without intervals (the history cannot identify every parameter) is printed,
published and reported as such: estimates, no made-up bounds."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

from analytics import clv, clv_model, scoring
from reports.business import CustomerScores
from reports.daily_report import build_document
from reports.render import render_markdown
from tests.clv_simulation import simulate
from tests.unit.reports.test_reports import figures, stored_scores

K = 5


def ridge_models() -> scoring.Models:
    """Fits on people none of whom made more than one repeat purchase: BG/NBD without intervals."""
    population = simulate(3_000, seed=7)
    x = population.x.clip(max=1)
    t_x = population.t_x * (x > 0)
    bgnbd = clv_model.fit_bgnbd(x, t_x, population.age)
    spend = clv_model.fit_gamma_gamma(population.x, population.m)
    return scoring.Models(bgnbd, spend, int(x.size), int((x > 0).sum()))


def test_the_command_prints_and_publishes_unavailable_intervals() -> None:
    models = ridge_models()
    assert not models.intervals
    result = scoring.ClvResult(1, date(2026, 3, 1), 365, models, scoring.clv_distribution([10.0] * 20, k=K), 0.1)
    published = clv.publishable_fit(result, K)
    assert published["intervals"] is False
    bgnbd = [p for p in published["parameters"] if p["name"] in clv_model.BGNBD_PARAMS]
    assert all(p["low"] is None and p["high"] is None and p["value"] > 0 for p in bgnbd)
    # Strict JSON: no NaN or Infinity in place of a missing bound.
    json.loads(json.dumps(published, allow_nan=False))
    table = clv.fit_table(published)
    assert table.count("unavailable") == len(clv_model.BGNBD_PARAMS)
    assert clv.NO_INTERVALS in table


def test_the_report_says_the_fit_has_no_intervals() -> None:
    scores = stored_scores()
    assert scores.clv is not None
    without = replace(scores.clv, parameters=ridge_models().parameters())
    text = render_markdown(build_document(replace(figures(), scores=CustomerScores(scores.rfm, without)), K))
    assert "no 95 % intervals" in text
    assert text.count("[no interval]") == len(clv_model.BGNBD_PARAMS)
    assert "Fit (95 % intervals)" in render_markdown(build_document(replace(figures(), scores=scores), K))
