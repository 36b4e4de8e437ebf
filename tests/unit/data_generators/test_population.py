"""The population's truth: sample moments match the parameters, BG/NBD purchases stop at drop-out,
draws are reproducible, and a user is the same person in any run."""

from __future__ import annotations

import math
import uuid

import numpy as np

from data_generators import population
from data_generators.population import Parameters

N = 200_000
# Four standard errors: a correct draw fails this about once in 16,000 runs.
Z = 4.0


def within(sample: np.ndarray, mean: float, variance: float) -> bool:
    """The sample mean is within Z standard errors (from the true variance and n) of ``mean``."""
    return abs(float(sample.mean()) - mean) < Z * math.sqrt(variance / len(sample))


def test_each_persons_parameters_follow_their_gamma_and_beta() -> None:
    params = Parameters()
    people = population.draw_people(N, params, np.random.default_rng(1))
    assert within(people.lam, params.r / params.alpha, params.r / params.alpha**2)
    a, b = params.a, params.b
    assert within(people.dropout, a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1)))
    assert within(people.nu, params.q / params.gamma, params.q / params.gamma**2)
    assert params.mean_rate == params.r / params.alpha and params.mean_dropout == a / (a + b)


def test_amounts_are_gamma_with_the_persons_scale() -> None:
    params = Parameters(p=6.0, q=4.0, gamma=30.0)
    nu = np.full(N, 0.1)
    amounts = population.draw_amounts(nu, params, np.random.default_rng(2))
    assert within(amounts, params.p / 0.1, params.p / 0.1**2)
    # Over people too: E[p / nu] = p * gamma / (q - 1); the sample is heavy-tailed, so use its own spread.
    people = population.draw_people(N, params, np.random.default_rng(3))
    spend = population.draw_amounts(people.nu, params, np.random.default_rng(4))
    assert within(spend, params.mean_spend, float(spend.var()))


def test_purchases_are_poisson_while_active_and_stop_at_drop_out() -> None:
    rng = np.random.default_rng(5)
    # Never dropping out: a Poisson count of mean lam * (end - start).
    counts = np.array([len(population.purchase_times(0.5, 0.0, 10.0, 30.0, rng)) for _ in range(5_000)])
    assert within(counts, 0.5 * 20, 0.5 * 20)
    # Always dropping out: at most the first purchase.
    assert max(len(population.purchase_times(5.0, 1.0, 0.0, 100.0, rng)) for _ in range(1_000)) == 1
    # With p: the number of purchases before drop-out is geometric (mean 1 / p when the window is long).
    long = np.array([len(population.purchase_times(1.0, 0.25, 0.0, 10_000.0, rng)) for _ in range(5_000)])
    assert within(long, 1 / 0.25, (1 - 0.25) / 0.25**2)
    times = population.purchase_times(2.0, 0.0, 3.0, 9.0, rng)
    assert len(times) > 0 and np.all(np.diff(times) > 0) and times.min() > 3.0 and times.max() < 9.0


def test_draws_are_reproducible_by_seed() -> None:
    params = Parameters()
    first, again = (population.draw_people(1_000, params, np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(first.lam, again.lam) and np.array_equal(first.nu, again.nu)
    other = population.draw_people(1_000, params, np.random.default_rng(8))
    assert not np.array_equal(first.lam, other.lam)
    assert np.array_equal(
        population.purchase_times(1.0, 0.1, 0.0, 50.0, np.random.default_rng(9)),
        population.purchase_times(1.0, 0.1, 0.0, 50.0, np.random.default_rng(9)),
    )


def test_a_user_is_the_same_person_whoever_else_exists() -> None:
    users = [str(uuid.UUID(int=n, version=4)) for n in range(1, 2001)]
    params = Parameters()
    everyone = population.people_for(users, params, 28)
    some = population.people_for(users[500:700], params, 28)
    assert np.array_equal(everyone.lam[500:700], some.lam) and np.array_equal(everyone.dropout[500:700], some.dropout)
    # Distinct users are distinct people (ids that differ in one bit included).
    assert len(set(everyone.lam.tolist())) > 0.99 * len(users)
    assert not np.array_equal(population.people_for(users, params, 29).lam, everyone.lam)
