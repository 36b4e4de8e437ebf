"""Customer lifetime value: BG/NBD for repeat purchases and Gamma-Gamma for spend, fitted by maximum likelihood.

The models (docs/analytics.md has the reading guide):

* **BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
  person buys at a Poisson rate ``lambda ~ Gamma(r, alpha)`` (shape, rate); after each repeat
  purchase they drop out for good with probability ``p ~ Beta(a, b)``.
* **Gamma-Gamma** (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"): the value of each
  purchase is ``Gamma(p, nu)`` with a person's own ``nu ~ Gamma(q, gamma)``; independent of the
  purchase process. Fitted on people with at least one repeat purchase.

Per person the inputs are ``x`` (repeat purchases: purchases after the first), ``t_x`` (age at the
last purchase: time from the first purchase to the last, 0 when ``x == 0``), ``T`` (age: time from
the first purchase to the end of the observation) and ``m`` (mean value of the repeat purchases).
Time is in days throughout. Both likelihoods are the closed forms of the papers, evaluated in log
space (``gammaln``/``betaln``/``logaddexp``); parameters are optimised as logarithms so that they stay
positive, and the 95 % intervals come from the inverse of the numerical Hessian of the negative
log-likelihood in that log scale (so an interval is ``exp(log_estimate +- 1.96 se)``: positive and
asymmetric, as a positive parameter's should be).

When that Hessian is not positive definite the likelihood is flat along some direction: a short
history cannot tell a population that drops out from one that buys rarely, and ``a`` and ``b``
slide along a ridge. The fit then keeps the optimiser's point estimates (they still predict: the
ridge is where the data are explained equally well) and marks every interval unavailable
(``Estimate.low``/``high`` None, ``Fit.intervals`` False): an interval from an indefinite matrix
would be a number without a meaning. The issue's check for such a fit is "within 25 % of the truth".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

logger = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]
ArrayLike = Sequence[float] | npt.NDArray[np.float64] | npt.NDArray[np.int64]

# Two-sided 95 % normal quantile, for the Wald intervals of the log-parameters.
Z95 = 1.959963984540054
# Step of the central differences for the Hessian, in log-parameter units: the parameters'
# relative error is ~1e-2 at 20,000 people, so a step of 1e-4 resolves the curvature while staying
# far above the optimiser's tolerance.
HESSIAN_STEP = 1e-4
# The smallest curvature, relative to the largest, that counts as curvature: the central differences
# carry a relative error of about 1e-16 / HESSIAN_STEP**2 = 1e-8 of the objective, so an eigenvalue
# ratio under 1e-6 (100 times that) is a flat ridge, not a maximum. A well-identified fit's ratio is
# orders of magnitude above it (about 1e-3 on the 20,000-person test population).
RIDGE_TOLERANCE = 1e-6
# A log-parameter above this (a parameter above e^300) is the optimiser running off to infinity,
# not an estimate; exp() of it and the intervals around it would overflow.
MAX_LOG_PARAMETER = 300.0
# Without an interval, the honesty check for an estimate: within this share of the truth.
NO_INTERVAL_TOLERANCE = 0.25


class FitError(RuntimeError):
    """The optimiser did not converge, or the data cannot identify the model (no repeat buyers, ...)."""


@dataclass(frozen=True)
class Estimate:
    """One fitted parameter: the maximum-likelihood value and its 95 % interval (None, None where the
    fit gives none: the information matrix was not positive definite)."""

    name: str
    value: float
    low: float | None
    high: float | None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def covers(self, truth: float) -> bool:
        """Whether ``truth`` lies in the interval; without one, whether the estimate is within 25 % of it."""
        if self.low is None or self.high is None:
            return abs(self.value - truth) <= NO_INTERVAL_TOLERANCE * abs(truth)
        return self.low <= truth <= self.high


@dataclass(frozen=True)
class Fit:
    """A fitted model: its estimates (in the papers' order) and the maximised log-likelihood."""

    estimates: tuple[Estimate, ...]
    log_likelihood: float
    people: int

    @property
    def intervals(self) -> bool:
        """Whether the fit has its 95 % intervals (False: point estimates only, see the module's docstring)."""
        return all(e.has_interval for e in self.estimates)

    def __getitem__(self, name: str) -> Estimate:
        for estimate in self.estimates:
            if estimate.name == name:
                return estimate
        raise KeyError(name)

    def values(self) -> tuple[float, ...]:
        return tuple(e.value for e in self.estimates)

    def bgnbd(self) -> BgNbdParams:
        """The point estimates of a BG/NBD fit."""
        return BgNbdParams(*self.values())

    def gamma_gamma(self) -> GammaGammaParams:
        """The point estimates of a Gamma-Gamma fit."""
        return GammaGammaParams(*self.values())


def _arrays(*columns: ArrayLike) -> tuple[Array, ...]:
    arrays = tuple(np.asarray(c, dtype=np.float64) for c in columns)
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError("the per-person columns must be one-dimensional and of equal length")
    return arrays


def _check_summary(x: Array, t_x: Array, age: Array) -> None:
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise ValueError("frequency x must be a whole number >= 0")
    if np.any(t_x < 0) or np.any(t_x > age):
        raise ValueError("recency t_x must lie between 0 and the age T")
    if np.any((x == 0) & (t_x != 0)):
        raise ValueError("recency t_x must be 0 for a person without repeat purchases")


# --- BG/NBD ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD: purchase rate ~ Gamma(r, alpha) (shape, rate per day), drop-out ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


BGNBD_PARAMS = ("r", "alpha", "a", "b")


def bgnbd_log_likelihood(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, age: ArrayLike) -> Array:
    """Each person's log-likelihood under BG/NBD (Fader, Hardie & Lee 2005, eq. 6).

    ``L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / Gamma(r)
    * [(alpha+T)^-(r+x) + [x>0] a/(b+x-1) (alpha+t_x)^-(r+x)]``
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    xs, ts, ages = _arrays(x, t_x, age)
    log_a1 = special.gammaln(r + xs) - special.gammaln(r) + r * math.log(alpha)
    log_a2 = special.betaln(a, b + xs) - special.betaln(a, b)
    log_alive = -(r + xs) * np.log(alpha + ages)
    # For x == 0 the second term is absent: its log is -inf (b + x - 1 may be <= 0 there).
    repeat = xs > 0
    log_dropped = np.full_like(xs, -np.inf)
    log_dropped[repeat] = math.log(a) - np.log(b + xs[repeat] - 1) - (r + xs[repeat]) * np.log(alpha + ts[repeat])
    result: Array = log_a1 + log_a2 + np.logaddexp(log_alive, log_dropped)
    return result


def _log_odds_dropped(params: BgNbdParams, xs: Array, ts: Array, ages: Array) -> Array:
    """log( [x>0] a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) ): the odds of "dropped out" to "alive"."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    out = np.full_like(xs, -np.inf)
    repeat = xs > 0
    out[repeat] = (
        math.log(a) - np.log(b + xs[repeat] - 1) + (r + xs[repeat]) * (np.log(alpha + ages[repeat]) - np.log(alpha + ts[repeat]))
    )
    return out


def probability_alive(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, age: ArrayLike) -> Array:
    """P(still a customer at T | x, t_x, T) (FHL 2005, eq. 11); 1 for people without repeat purchases."""
    xs, ts, ages = _arrays(x, t_x, age)
    result: Array = special.expit(-_log_odds_dropped(params, xs, ts, ages))
    return result


def expected_purchases(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, age: ArrayLike, *, t: float) -> Array:
    """Expected purchases in the next ``t`` days, given each person's history (FHL 2005, eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    xs, ts, ages = _arrays(x, t_x, age)
    if t < 0:
        raise ValueError("the horizon t must be >= 0")
    # (alpha+T)/(alpha+T+t) to the power r+x, in log space: large x would overflow otherwise.
    log_ratio = (r + xs) * (np.log(alpha + ages) - np.log(alpha + ages + t))
    hyp = special.hyp2f1(r + xs, b + xs, a + b + xs - 1, t / (alpha + ages + t))
    numerator = (a + b + xs - 1) / (a - 1) * (1 - np.exp(log_ratio) * hyp)
    result: Array = numerator * special.expit(-_log_odds_dropped(params, xs, ts, ages))
    return result


def expected_purchases_new_customer(params: BgNbdParams, t: float) -> float:
    """E[X(t)]: repeat purchases in the first ``t`` days of a person just acquired (FHL 2005, eq. 9)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + t)
    return float((a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * special.hyp2f1(r, b, a + b - 1, z)))


# --- Gamma-Gamma ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma: a purchase's value ~ Gamma(p, nu) (shape, rate), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float


GAMMA_GAMMA_PARAMS = ("p", "q", "gamma")


def gamma_gamma_log_likelihood(params: GammaGammaParams, x: ArrayLike, m: ArrayLike) -> Array:
    """Each person's log-density of their mean repeat spend ``m`` over ``x >= 1`` purchases (FH 2013, eq. 3).

    ``f(m | x) = Gamma(px+q) / (Gamma(px) Gamma(q)) * gamma^q m^(px-1) x^(px) / (gamma + m x)^(px+q)``
    """
    p, q, gamma = params.p, params.q, params.gamma
    xs, ms = _arrays(x, m)
    if np.any(xs < 1) or np.any(ms <= 0):
        raise ValueError("the Gamma-Gamma model needs x >= 1 repeat purchases and a positive mean spend")
    px = p * xs
    result: Array = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * math.log(gamma)
        + (px - 1) * np.log(ms)
        + px * np.log(xs)
        - (px + q) * np.log(gamma + ms * xs)
    )
    return result


def expected_spend(params: GammaGammaParams, x: ArrayLike, m: ArrayLike) -> Array:
    """Expected value of a person's future purchase (FH 2013, eq. 5); the population mean when x == 0.

    ``E[Z | x, m] = p (gamma + x m) / (p x + q - 1)``, a weighted average of the population mean
    ``p gamma / (q - 1)`` and the person's own mean ``m``; it needs ``q > 1``.
    """
    p, q, gamma = params.p, params.q, params.gamma
    xs, ms = _arrays(x, m)
    if q <= 1:
        raise ValueError("the expected spend is finite only for q > 1")
    ms = np.where(xs > 0, ms, 0.0)
    result: Array = p * (gamma + xs * ms) / (p * xs + q - 1)
    return result


# --- Fitting --------------------------------------------------------------------------------------


def _numerical_hessian(f: Callable[[Array], float], theta: Array, step: float = HESSIAN_STEP) -> Array:
    """Central-difference Hessian of ``f`` at ``theta``."""
    n = theta.size
    hessian = np.empty((n, n))
    eye = np.eye(n) * step
    f0 = f(theta)
    for i in range(n):
        hessian[i, i] = (f(theta + eye[i]) - 2 * f0 + f(theta - eye[i])) / step**2
        for j in range(i + 1, n):
            value = (
                f(theta + eye[i] + eye[j]) - f(theta + eye[i] - eye[j]) - f(theta - eye[i] + eye[j]) + f(theta - eye[i] - eye[j])
            ) / (4 * step**2)
            hessian[i, j] = hessian[j, i] = value
    return hessian


def _maximise(names: tuple[str, ...], mean_negative_ll: Callable[[Array], float], start: Array, people: int) -> Fit:
    """Minimise the mean negative log-likelihood over log-parameters; Wald intervals in log space.

    The objective is the *mean* over people so that the optimiser's tolerances mean the same at any
    population size; the information of the whole sample is ``people`` times its Hessian.
    """
    result = optimize.minimize(mean_negative_ll, start, method="BFGS", options={"gtol": 1e-7, "maxiter": 2000})
    # BFGS with numerical gradients may end on "precision loss" at the optimum itself, so success
    # is judged by the Hessian below (positive definite = a maximum of the likelihood), not the flag.
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise FitError(f"the optimiser did not converge: {result.message}")
    theta: Array = result.x
    if np.any(theta > MAX_LOG_PARAMETER):
        raise FitError("the optimiser ran off along a flat direction: the data cannot identify the parameters")
    log_likelihood = -float(result.fun) * people
    information = _numerical_hessian(mean_negative_ll, theta) * people
    se = _standard_errors(information)
    if se is not None:
        with np.errstate(over="ignore"):
            lows, highs = np.exp(theta - Z95 * se), np.exp(theta + Z95 * se)
        if not np.all(np.isfinite(highs)):  # a curvature so slight that the interval has no upper end
            se = None
    if se is None:
        logger.warning(
            "fit of %s on %d people: the information matrix is not positive definite (the data cannot identify every"
            " parameter); point estimates without intervals",
            ", ".join(names),
            people,
        )
        return Fit(tuple(Estimate(n, math.exp(v), None, None) for n, v in zip(names, theta, strict=True)), log_likelihood, people)
    estimates = tuple(
        Estimate(name, math.exp(v), float(low), float(high)) for name, v, low, high in zip(names, theta, lows, highs, strict=True)
    )
    return Fit(estimates, log_likelihood, people)


def _standard_errors(information: Array) -> Array | None:
    """The standard errors from the inverse of the information matrix; None unless it is positive
    definite beyond the numerical Hessian's noise (its smallest eigenvalue above RIDGE_TOLERANCE
    times its largest): only then is the optimum a maximum with curvature in every direction."""
    if not np.all(np.isfinite(information)):
        return None
    eigenvalues = np.linalg.eigvalsh(information)
    if eigenvalues[0] <= RIDGE_TOLERANCE * max(float(eigenvalues[-1]), 0.0):
        return None
    try:
        variances = np.diag(np.linalg.inv(information))
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(variances)) or np.any(variances <= 0):
        return None
    se: Array = np.sqrt(variances)
    return se


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, age: ArrayLike) -> Fit:
    """Maximum-likelihood BG/NBD parameters (r, alpha, a, b) with 95 % intervals (none where the data
    cannot identify them: ``Fit.intervals``)."""
    xs, ts, ages = _arrays(x, t_x, age)
    _check_summary(xs, ts, ages)
    if not np.any(xs > 0):
        raise FitError("nobody made a repeat purchase: BG/NBD cannot be fitted")
    # Collapse identical histories: daily data repeat (x, t_x, T) triples a lot, and a weighted sum
    # over the unique ones gives the same likelihood for less work.
    unique, counts = np.unique(np.stack([xs, ts, ages]), axis=1, return_counts=True)
    ux, ut, ua = unique
    weights = counts.astype(np.float64) / xs.size

    def mean_negative_ll(theta: Array) -> float:
        value = -float(weights @ bgnbd_log_likelihood(BgNbdParams(*np.exp(theta)), ux, ut, ua))
        return value if math.isfinite(value) else math.inf

    # Start at r = 1 and alpha = mean age / (mean repeat count + 1), the rate of a population that
    # never drops out; a = b = 1 is the flat Beta.
    start = np.log([1.0, float(np.mean(ages)) / (float(np.mean(xs)) + 1.0), 1.0, 1.0])
    return _maximise(BGNBD_PARAMS, mean_negative_ll, start, xs.size)


def fit_gamma_gamma(x: ArrayLike, m: ArrayLike) -> Fit:
    """Maximum-likelihood Gamma-Gamma parameters (p, q, gamma) with 95 % intervals (none where the data
    cannot identify them: ``Fit.intervals``), on repeat buyers."""
    xs, ms = _arrays(x, m)
    keep = xs > 0
    xs, ms = xs[keep], ms[keep]
    if xs.size < 2:
        raise FitError("fewer than two repeat buyers: Gamma-Gamma cannot be fitted")

    def mean_negative_ll(theta: Array) -> float:
        value = -float(np.mean(gamma_gamma_log_likelihood(GammaGammaParams(*np.exp(theta)), xs, ms)))
        return value if math.isfinite(value) else math.inf

    # p = 1 and q = 2 (a finite mean spend), gamma so that the population mean p gamma/(q-1) is the mean m.
    start = np.log([1.0, 2.0, float(np.mean(ms))])
    return _maximise(GAMMA_GAMMA_PARAMS, mean_negative_ll, start, xs.size)


# --- Per-person predictions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Customers:
    """Per-person summaries, one array each: repeat purchases, recency, age (days), mean repeat spend."""

    x: Array
    t_x: Array
    age: Array
    m: Array


@dataclass(frozen=True)
class Predictions:
    """Per person, in the order of the inputs."""

    expected_purchases: Array
    probability_alive: Array
    expected_spend: Array
    clv: Array
    horizon_days: float


def predict(
    bgnbd: BgNbdParams, gamma_gamma: GammaGammaParams, customers: Customers, *, horizon_days: float = 365.0
) -> Predictions:
    """Expected purchases over the horizon, P(alive), expected spend per purchase and their product.

    CLV here is undiscounted: expected purchases in the next ``horizon_days`` times the expected
    value of a purchase (the two models are independent by assumption, so the expectation of the
    product is the product of the expectations). docs/analytics.md says what discounting would change.
    """
    c = customers
    purchases = expected_purchases(bgnbd, c.x, c.t_x, c.age, t=horizon_days)
    spend = expected_spend(gamma_gamma, c.x, c.m)
    return Predictions(
        expected_purchases=purchases,
        probability_alive=probability_alive(bgnbd, c.x, c.t_x, c.age),
        expected_spend=spend,
        clv=purchases * spend,
        horizon_days=horizon_days,
    )
