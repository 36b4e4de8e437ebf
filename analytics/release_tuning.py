"""Choosing a release's contribution bounds from the data, and measuring what the noise costs:
the pieces of ``python -m bench.utility`` that need no database (issue 29).

A bound is the 99th percentile (nearest rank) of the person-days that have any of the figure,
rounded up to a round number (1, 2, 2.5 or 5 times a power of ten): high enough to keep nearly
every person-day whole, low enough that one busy person does not set everybody's noise.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import TypeVar

from analytics import release

BOUND_QUANTILE = 0.99
ROUND_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
# The cells the promise is about: the DP path must publish at least as many of them.
LARGE_CELL_PEOPLE = 100

K = TypeVar("K", bound=Hashable)


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values`` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def round_up(value: float) -> int:
    """The smallest round number (1, 2, 2.5 or 5 times a power of ten, an integer) at or above ``value``."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(int(step * power) for step in ROUND_STEPS if (step * power).is_integer() and step * power >= value)


@dataclass(frozen=True)
class Bounds:
    """Bounds chosen from the data, and the share of person-days each keeps whole."""

    events: int
    purchases: int
    spend: int
    kept: dict[str, float]


def choose_bounds(days: Sequence[tuple[int, int, float]], q: float = BOUND_QUANTILE) -> Bounds:
    """Bounds from person-days (events, purchases, spend): per figure, the ``q`` quantile of the
    days with any of it, rounded up."""
    events = round_up(quantile([e for e, _p, _s in days if e > 0], q))
    purchases = round_up(quantile([p for _e, p, _s in days if p > 0], q))
    spend = round_up(quantile([s for _e, _p, s in days if s > 0], q))
    n = len(days) or 1
    kept = {
        "events": sum(e <= events for e, _p, _s in days) / n,
        "purchases": sum(p <= purchases for _e, p, _s in days) / n,
        "spend": sum(s <= spend for _e, _p, s in days) / n,
    }
    return Bounds(events, purchases, spend, kept)


def relative_error(noisy: Mapping[K, float], true: Mapping[K, float]) -> float | None:
    """The median of |noisy - true| / true over the cells with a true value above 0 (None: none)."""
    errors = [abs(noisy[cell] - value) / value for cell, value in true.items() if value > 0]
    return median(errors) if errors else None


@dataclass(frozen=True)
class Published:
    """How many cells with any people, and of those with LARGE_CELL_PEOPLE or more, a rule publishes."""

    cells: int
    published: int
    large: int
    large_published: int


def k_rule_published(people_by_group: Sequence[Mapping[str, int]], k: int) -> Published:
    """Today's k-rule (analytics.release, with its secondary suppression), applied to each group of
    cells published together (a day's countries)."""
    cells = published = large = large_published = 0
    for people in people_by_group:
        hidden = release.suppressed_cells(people, k)
        for key, n in people.items():
            if n <= 0:
                continue
            cells += 1
            published += key not in hidden
            if n >= LARGE_CELL_PEOPLE:
                large += 1
                large_published += key not in hidden
    return Published(cells, published, large, large_published)


def public_keys_published(people_by_group: Sequence[Mapping[str, int]]) -> Published:
    """A release over public keys publishes every cell, whatever its size."""
    counts = [n for people in people_by_group for n in people.values() if n > 0]
    large = sum(n >= LARGE_CELL_PEOPLE for n in counts)
    return Published(len(counts), len(counts), large, large)
