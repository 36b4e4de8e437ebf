"""BG/NBD and Gamma-Gamma: the closed forms against direct integrals, and a fit that finds the truth."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate, stats

from analytics import clv_model
from analytics.clv_model import BgNbdParams, Customers, FitError, GammaGammaParams
from analytics.clv_validation import compare_holdout, naive_holdout
from tests.clv_simulation import TRUE_BGNBD, TRUE_GAMMA_GAMMA, simulate

# Shapes above 1 keep the mixing densities finite at 0, so that quad integrates them accurately.
PARAMS = BgNbdParams(r=1.3, alpha=6.0, a=1.4, b=2.2)
SPEND = GammaGammaParams(p=2.5, q=3.2, gamma=9.0)
# (x, t_x, T) in days: no repeat purchase, one, and several with a long silence since the last.
PEOPLE = [(0, 0.0, 30.0), (1, 5.0, 40.0), (3, 20.0, 25.0), (6, 12.0, 60.0)]


# The mixing densities, written out with math.lgamma: scipy.stats' pdf per point made each double
# integral take tens of seconds.
_LOG_GAMMA_NORM = PARAMS.r * math.log(PARAMS.alpha) - math.lgamma(PARAMS.r)
_LOG_BETA_NORM = math.lgamma(PARAMS.a + PARAMS.b) - math.lgamma(PARAMS.a) - math.lgamma(PARAMS.b)


def _mixing_density(lam: float, p: float) -> float:
    """Gamma(r, alpha) density of the rate times Beta(a, b) density of the drop-out chance."""
    log_gamma = _LOG_GAMMA_NORM + (PARAMS.r - 1) * math.log(lam) - PARAMS.alpha * lam
    log_beta = _LOG_BETA_NORM + (PARAMS.a - 1) * math.log(p) + (PARAMS.b - 1) * math.log1p(-p)
    return math.exp(log_gamma + log_beta)


def _mixed(f: Callable[[float, float], float]) -> float:
    """Integrate f(lambda, p) against the mixing densities, numerically (scipy.integrate.dblquad)."""

    def weighted(lam: float, p: float) -> float:
        return f(lam, p) * _mixing_density(lam, p) if lam > 0 and 0 < p < 1 else 0.0

    value, _error = integrate.dblquad(weighted, 0, 1, 0, np.inf, epsabs=1e-14, epsrel=1e-9)
    return float(value)


def _individual_likelihood(x: int, t_x: float, age: float) -> Callable[[float, float], float]:
    """P(x, t_x, T | lambda, p): alive at T, or dropped out right after the x-th purchase (x > 0)."""

    def f(lam: float, p: float) -> float:
        alive = (1 - p) ** x * lam**x * math.exp(-lam * age)
        dropped = p * (1 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x) if x > 0 else 0.0
        return alive + dropped

    return f


@pytest.mark.parametrize(("x", "t_x", "age"), PEOPLE)
def test_the_bgnbd_likelihood_is_the_integral_over_rates_and_dropout_chances(x: int, t_x: float, age: float) -> None:
    direct = _mixed(_individual_likelihood(x, t_x, age))
    closed = math.exp(clv_model.bgnbd_log_likelihood(PARAMS, [x], [t_x], [age])[0])
    assert closed == pytest.approx(direct, rel=1e-6)


@pytest.mark.parametrize(("x", "t_x", "age"), PEOPLE)
def test_p_alive_and_expected_purchases_are_the_posterior_averages(x: int, t_x: float, age: float) -> None:
    horizon = 45.0
    evidence = _mixed(_individual_likelihood(x, t_x, age))

    def alive(lam: float, p: float) -> float:
        return (1 - p) ** x * lam**x * math.exp(-lam * age)

    def alive_then_buys(lam: float, p: float) -> float:
        # While alive, purchases in the next t days number (1 - exp(-lambda p t)) / p on average.
        return alive(lam, p) * (1 - math.exp(-lam * p * horizon)) / p

    p_alive = clv_model.probability_alive(PARAMS, [x], [t_x], [age])[0]
    expected = clv_model.expected_purchases(PARAMS, [x], [t_x], [age], t=horizon)[0]
    assert p_alive == pytest.approx(_mixed(alive) / evidence, rel=1e-6)
    assert expected == pytest.approx(_mixed(alive_then_buys) / evidence, rel=1e-6)


def test_a_new_customer_expects_what_a_person_of_age_zero_expects() -> None:
    new = clv_model.expected_purchases_new_customer(PARAMS, 90.0)
    assert new == pytest.approx(clv_model.expected_purchases(PARAMS, [0], [0.0], [0.0], t=90.0)[0], rel=1e-12)


@pytest.mark.parametrize(("x", "m"), [(1, 12.0), (4, 3.5), (10, 30.0)])
def test_the_gamma_gamma_density_and_expected_spend_are_the_integrals_over_nu(x: int, m: float) -> None:
    p, q, gamma = SPEND.p, SPEND.q, SPEND.gamma

    def mean_density(nu: float) -> float:
        # The mean of x Gamma(p, nu) purchase values is Gamma(p x, x nu) (shape, rate).
        return float(stats.gamma.pdf(m, p * x, scale=1 / (x * nu)) * stats.gamma.pdf(nu, q, scale=1 / gamma))

    density, _ = integrate.quad(mean_density, 0, np.inf, epsabs=1e-14, epsrel=1e-10)
    posterior_mean, _ = integrate.quad(lambda nu: p / nu * mean_density(nu), 0, np.inf, epsabs=1e-14, epsrel=1e-10)
    assert math.exp(clv_model.gamma_gamma_log_likelihood(SPEND, [x], [m])[0]) == pytest.approx(density, rel=1e-7)
    assert clv_model.expected_spend(SPEND, [x], [m])[0] == pytest.approx(posterior_mean / density, rel=1e-7)


def test_someone_without_repeat_purchases_is_expected_to_spend_the_population_mean() -> None:
    population_mean = SPEND.p * SPEND.gamma / (SPEND.q - 1)
    assert clv_model.expected_spend(SPEND, [0], [0.0])[0] == pytest.approx(population_mean)


def test_a_history_that_cannot_happen_is_refused() -> None:
    with pytest.raises(ValueError, match="t_x must be 0"):
        clv_model.fit_bgnbd([0, 1], [3.0, 2.0], [10.0, 10.0])
    with pytest.raises(ValueError, match="between 0 and the age"):
        clv_model.fit_bgnbd([1], [12.0], [10.0])
    with pytest.raises(FitError, match="nobody made a repeat purchase"):
        clv_model.fit_bgnbd([0, 0], [0.0, 0.0], [10.0, 20.0])


def test_a_fit_on_20000_simulated_people_recovers_the_truth_and_predicts_the_holdout() -> None:
    population = simulate(20_000, seed=28)
    bgnbd = clv_model.fit_bgnbd(population.x, population.t_x, population.age)
    spend = clv_model.fit_gamma_gamma(population.x, population.m)

    for name in clv_model.BGNBD_PARAMS:
        assert bgnbd[name].covers(getattr(TRUE_BGNBD, name)), (bgnbd[name], getattr(TRUE_BGNBD, name))
    for name in clv_model.GAMMA_GAMMA_PARAMS:
        assert spend[name].covers(getattr(TRUE_GAMMA_GAMMA, name)), (spend[name], getattr(TRUE_GAMMA_GAMMA, name))

    customers = Customers(population.x, population.t_x, population.age, population.m)
    predicted = clv_model.expected_purchases(bgnbd.bgnbd(), customers.x, customers.t_x, customers.age, t=population.holdout_days)
    check = compare_holdout(predicted, population.holdout, naive_holdout(customers, population.holdout_days))
    assert abs(check.total_error) <= 0.10, check
    assert check.mae_reduction >= 0.20, check


def test_predictions_multiply_purchases_by_spend_and_know_who_is_surely_alive() -> None:
    population = simulate(3_000, seed=5)
    customers = Customers(population.x, population.t_x, population.age, population.m)
    bgnbd = clv_model.fit_bgnbd(customers.x, customers.t_x, customers.age).bgnbd()
    spend = clv_model.fit_gamma_gamma(customers.x, customers.m).gamma_gamma()
    predictions = clv_model.predict(bgnbd, spend, customers, horizon_days=365.0)
    assert np.allclose(predictions.clv, predictions.expected_purchases * predictions.expected_spend)
    assert np.all(predictions.probability_alive[customers.x == 0] == 1.0)
    assert np.all((predictions.probability_alive > 0) & (predictions.probability_alive <= 1))
    # A longer horizon never expects fewer purchases.
    shorter = clv_model.predict(bgnbd, spend, customers, horizon_days=180.0)
    assert np.all(shorter.expected_purchases <= predictions.expected_purchases)


# Reference values from pymc-marketing 0.19.2 (pymc 5.28.5), run once in a side virtualenv on the
# same data, simulate(2_000, seed=2_000): BetaGeoModel with HalfFlat priors on r, alpha, a and b
# (so that its MAP is the maximum-likelihood estimate) and GammaGammaModel with its default
# priors (HalfFlat on p, q, v), both fit(method="map"); fit_summary() rounds to 3 decimals.
# docs/analytics.md shows the script. Not computed here: pymc-marketing is not a dependency.
PYMC_MARKETING_BGNBD_MAP = {"r": 0.571, "alpha": 48.546, "a": 0.592, "b": 1.653}
PYMC_MARKETING_GAMMA_GAMMA_MAP = {"p": 5.985, "q": 3.652, "gamma": 15.323}


def test_the_fits_agree_with_pymc_marketing_on_the_same_small_population() -> None:
    population = simulate(2_000, seed=2_000)
    bgnbd = clv_model.fit_bgnbd(population.x, population.t_x, population.age)
    spend = clv_model.fit_gamma_gamma(population.x, population.m)
    # Three decimals of rounding on pymc-marketing's side, and two optimisers' tolerances.
    for name, reference in PYMC_MARKETING_BGNBD_MAP.items():
        assert bgnbd[name].value == pytest.approx(reference, rel=2e-3, abs=1e-3), name
    for name, reference in PYMC_MARKETING_GAMMA_GAMMA_MAP.items():
        assert spend[name].value == pytest.approx(reference, rel=2e-3, abs=1e-3), name


def test_a_history_that_cannot_identify_drop_out_gives_the_estimates_without_intervals() -> None:
    """With nobody past one repeat purchase the likelihood sees a and b only through a / (a + b):
    a flat ridge, so the information matrix is singular. The fit still returns its point
    estimates, usable for predictions, and says that it has no intervals."""
    population = simulate(3_000, seed=7)
    x = np.minimum(population.x, 1)
    t_x = np.where(x > 0, population.t_x, 0.0)
    fit = clv_model.fit_bgnbd(x, t_x, population.age)
    assert not fit.intervals
    assert [e.name for e in fit.estimates] == list(clv_model.BGNBD_PARAMS)
    assert all(e.low is None and e.high is None for e in fit.estimates)
    assert all(math.isfinite(e.value) and e.value > 0 for e in fit.estimates)
    predicted = clv_model.expected_purchases(fit.bgnbd(), x, t_x, population.age, t=30.0)
    assert np.all(np.isfinite(predicted))
    assert np.all(predicted >= 0)
    # The same people with their full histories are identified: intervals again.
    assert clv_model.fit_bgnbd(population.x, population.t_x, population.age).intervals


def test_an_estimate_without_an_interval_covers_a_truth_within_25_percent() -> None:
    estimate = clv_model.Estimate("a", 1.0, None, None)
    assert estimate.covers(0.81)
    assert estimate.covers(1.3)
    assert not estimate.covers(0.79)
    assert not estimate.covers(1.34)
    assert clv_model.Estimate("a", 1.0, 0.9, 1.1).covers(1.05)
    assert not clv_model.Estimate("a", 1.0, 0.9, 1.1).covers(1.2)
