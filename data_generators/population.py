"""Shoppers drawn from known parameters: BG/NBD for purchases and drop-out, Gamma-Gamma for spend.

Each person has a purchase rate ``lam`` (purchases per day while active) drawn from
Gamma(shape r, rate alpha), a probability ``dropout`` of never coming back after each purchase
drawn from Beta(a, b), and a spend scale ``nu`` drawn from Gamma(shape q, rate gamma); each of
their purchases is worth Gamma(shape p, rate nu) euros. These are the BG/NBD model (Fader,
Hardie and Lee 2005) and the Gamma-Gamma spend model (Fader, Hardie and Lee 2005b), so a fit of
either on a population drawn here can be checked against the truth (``Parameters``).

Pure numpy, no I/O: the generator (``data_generators.events.ShopperFactory``) maps people onto
the users it reads, and tests and analysts draw populations with ``draw_people`` and
``purchase_times``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

# A user's parameters are row ``slot(user)`` of a table drawn once per population seed: the same
# user keeps them across runs and processes, whoever else exists. 2**20 rows: a million distinct
# people, drawn in about 50 ms; in larger user sets some people share a row, which changes no
# distribution.
TABLE_BITS = 20


@dataclass(frozen=True)
class Parameters:
    """The population's true parameters (time in days, money in euros).

    The defaults are plausible for a European web shop: a purchase every 16 days on average
    while active (r / alpha = 0.0625 a day) but most people far less often (shape 0.25: many
    rare buyers, a few heavy ones); about one in four never comes back after a purchase
    (a / (a + b) = 0.24); an average order of 60 EUR (p * gamma / (q - 1)), varying more
    between people than between one person's orders.
    """

    r: float = 0.25
    alpha: float = 4.0
    a: float = 0.8
    b: float = 2.5
    p: float = 6.0
    q: float = 4.0
    gamma: float = 30.0

    def __post_init__(self) -> None:
        if min(self.r, self.alpha, self.a, self.b, self.p, self.q, self.gamma) <= 0:
            raise ValueError("every parameter of the population must be more than 0")

    @property
    def mean_rate(self) -> float:
        """E[lam], purchases per day of an active person."""
        return self.r / self.alpha

    @property
    def mean_dropout(self) -> float:
        """E[dropout]."""
        return self.a / (self.a + self.b)

    @property
    def mean_spend(self) -> float:
        """E[amount] over people and purchases: E[p / nu] = p * gamma / (q - 1) (q > 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


@dataclass(frozen=True)
class People:
    """Per-person truth, one array element per person."""

    lam: Floats
    dropout: Floats
    nu: Floats

    def __len__(self) -> int:
        return len(self.lam)

    def take(self, rows: npt.NDArray[np.int64]) -> People:
        return People(self.lam[rows], self.dropout[rows], self.nu[rows])


def draw_people(n: int, params: Parameters, rng: np.random.Generator) -> People:
    """``n`` people drawn independently from the population (numpy's gamma takes a scale: 1 / rate)."""
    return People(
        lam=rng.gamma(params.r, 1 / params.alpha, n),
        dropout=rng.beta(params.a, params.b, n),
        nu=rng.gamma(params.q, 1 / params.gamma, n),
    )


def draw_amounts(nu: Floats, params: Parameters, rng: np.random.Generator) -> Floats:
    """One purchase's amount in euros for each element of ``nu`` (Gamma(p, rate nu))."""
    return rng.gamma(params.p, 1 / nu)


def purchase_times(lam: float, dropout: float, start: float, end: float, rng: np.random.Generator) -> Floats:
    """A person's purchases in (start, end), days, under BG/NBD: a Poisson process of rate
    ``lam`` from ``start``, ended for good after each purchase with probability ``dropout``.

    ``start`` is the person's birth: in BG/NBD terms their first purchase (time 0), not
    returned; the times returned are the repeat purchases. Split them at a cut-off for a
    calibration and a holdout period: frequency x = purchases before the cut-off, recency t_x =
    the last of them minus ``start``, T = cut-off minus ``start``.
    """
    times: list[float] = []
    t = start
    if lam <= 0:
        return np.array(times)
    while True:
        t += rng.exponential(1 / lam)
        if t >= end:
            break
        times.append(t)
        if rng.random() < dropout:
            break
    return np.array(times)


def slots(user_ids: Sequence[str], seed: int) -> npt.NDArray[np.uint64]:
    """A stable 64-bit number per user and population seed (keyed BLAKE2b of the id): its low
    TABLE_BITS pick the person, its high bits spread users over generator processes."""
    key = seed.to_bytes(8, "little", signed=True)
    return np.array(
        [int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8, key=key).digest(), "little") for u in user_ids],
        dtype=np.uint64,
    )


def people_table(params: Parameters, seed: int) -> People:
    """The 2**TABLE_BITS people users are mapped onto, drawn from ``seed``."""
    return draw_people(1 << TABLE_BITS, params, np.random.default_rng(seed))


def people_for(user_ids: Sequence[str], params: Parameters, seed: int) -> People:
    """Each user's person: the same for the same user, parameters and seed, in any process."""
    rows = (slots(user_ids, seed) & np.uint64((1 << TABLE_BITS) - 1)).astype(np.int64)
    return people_table(params, seed).take(rows)
