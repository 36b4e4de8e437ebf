"""RFM: recency, frequency and monetary quintile scores per person, and the usual named segments.

Scores run from 1 (worst) to 5 (best). A person's score on a measure is set by the share of people
who are strictly *worse* on it: ``score = 1 + floor(5 * worse / n)``. So

* equal values always get equal scores, whatever the order of the input (ties are never split by
  row order or by key), and the score of a value does not depend on who else has the same value;
* with distinct values the five scores are the quintiles (n/5 people each, the 20 % best get 5);
* with heavy ties the classes are uneven: if 60 % of people bought once, they all score F = 1 and
  the next frequency scores F = 4 (nobody is worse than 60 % and better than 20 %).

Recency is "days since the last purchase" (fewer is better), frequency the number of purchases
and monetary their total value in the window (more is better).

The segments follow the widely used R x F grid (the "RFM segmentation" map popularised by Putler
and reused by most open-source RFM notebooks), with "lost" split from "hibernating" at R = 1, F = 1
as in the eleven-segment variants. Each of the 25 (R, F) pairs belongs to exactly one segment;
monetary does not change the segment (it is shown as the segments' value). docs/analytics.md
draws the grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analytics.release import DEFAULT_MIN_CELL_USERS, suppressed_cells

SCORES = (1, 2, 3, 4, 5)

# Segment names in the order a table shows them: best first.
CHAMPIONS = "champions"
LOYAL = "loyal customers"
POTENTIAL_LOYALISTS = "potential loyalists"
NEW = "new customers"
PROMISING = "promising"
NEED_ATTENTION = "need attention"
ABOUT_TO_SLEEP = "about to sleep"
AT_RISK = "at risk"
CANT_LOSE = "can't lose them"
HIBERNATING = "hibernating"
LOST = "lost"
SEGMENTS = (
    CHAMPIONS, LOYAL, POTENTIAL_LOYALISTS, NEW, PROMISING, NEED_ATTENTION,
    ABOUT_TO_SLEEP, AT_RISK, CANT_LOSE, HIBERNATING, LOST,
)  # fmt: skip

# (recency scores, frequency scores) -> segment; together they tile the 5 x 5 grid exactly once
# (tests/unit/analytics checks it).
_GRID: tuple[tuple[range, range, str], ...] = (
    (range(5, 6), range(4, 6), CHAMPIONS),
    (range(3, 5), range(4, 6), LOYAL),
    (range(4, 6), range(2, 4), POTENTIAL_LOYALISTS),
    (range(5, 6), range(1, 2), NEW),
    (range(4, 5), range(1, 2), PROMISING),
    (range(3, 4), range(3, 4), NEED_ATTENTION),
    (range(3, 4), range(1, 3), ABOUT_TO_SLEEP),
    (range(1, 3), range(3, 5), AT_RISK),
    (range(1, 3), range(5, 6), CANT_LOSE),
    (range(1, 3), range(1, 3), HIBERNATING),  # less (1, 1), below
    (range(1, 2), range(1, 2), LOST),
)
SEGMENT_OF: Mapping[tuple[int, int], str] = {
    (r, f): name for rs, fs, name in _GRID for r in rs for f in fs
}  # the later LOST entry overrides HIBERNATING at (1, 1)


def segment(recency_score: int, frequency_score: int) -> str:
    """The named segment of an (R, F) pair of scores, each 1..5."""
    try:
        return SEGMENT_OF[recency_score, frequency_score]
    except KeyError:
        raise ValueError(f"scores run from 1 to 5, not ({recency_score}, {frequency_score})") from None


def quintile_scores(values: Sequence[float], *, higher_is_better: bool = True) -> list[int]:
    """Scores 1..5 from the share of people strictly worse than each one (see the module docstring)."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or np.any(np.isnan(data)):
        raise ValueError("the values must be a flat sequence of numbers")
    n = data.size
    if n == 0:
        return []
    ordered = np.sort(data)
    smaller = np.searchsorted(ordered, data, side="left")
    larger = n - np.searchsorted(ordered, data, side="right")
    worse = smaller if higher_is_better else larger
    return [int(s) for s in 1 + (5 * worse) // n]


@dataclass(frozen=True)
class Rfm:
    """One person's measures as of a day: days since the last purchase, purchases and their total value."""

    recency_days: float
    frequency: int
    monetary: float


@dataclass(frozen=True)
class RfmScore:
    """One person's scores (1..5 each) and segment."""

    recency: int
    frequency: int
    monetary: int
    segment: str

    @property
    def code(self) -> str:
        """The customary three-digit code, e.g. "545"."""
        return f"{self.recency}{self.frequency}{self.monetary}"


def score(people: Sequence[Rfm]) -> list[RfmScore]:
    """Each person's scores and segment, in the order given (scores are relative to ``people``)."""
    if any(p.frequency < 1 or p.recency_days < 0 for p in people):
        raise ValueError("RFM describes buyers: frequency >= 1 and recency >= 0 days")
    r = quintile_scores([p.recency_days for p in people], higher_is_better=False)
    f = quintile_scores([p.frequency for p in people])
    m = quintile_scores([p.monetary for p in people])
    return [RfmScore(ri, fi, mi, segment(ri, fi)) for ri, fi, mi in zip(r, f, m, strict=True)]


@dataclass(frozen=True)
class SegmentSummary:
    """What may leave the pseudonymous zone: a segment's size and value (None where suppressed)."""

    segment: str
    people: int | None
    total_value: float | None
    mean_value: float | None

    @property
    def suppressed(self) -> bool:
        return self.people is None


def segment_summary(
    people: Sequence[Rfm], scores: Sequence[RfmScore], *, k: int = DEFAULT_MIN_CELL_USERS
) -> list[SegmentSummary]:
    """Size and total/mean monetary value of every segment (all eleven, in SEGMENTS order).

    A segment of fewer than ``k`` people (but not none) is suppressed, with secondary suppression
    so that the total of all people cannot give it back (analytics.release's k-rule).
    """
    if len(people) != len(scores):
        raise ValueError("people and scores must describe the same people")
    sizes = dict.fromkeys(SEGMENTS, 0)
    totals = dict.fromkeys(SEGMENTS, 0.0)
    for person, s in zip(people, scores, strict=True):
        sizes[s.segment] += 1
        totals[s.segment] += person.monetary
    hidden = suppressed_cells(sizes, k)
    summary = []
    for name in SEGMENTS:
        n = sizes[name]
        if name in hidden:
            summary.append(SegmentSummary(name, None, None, None))
        else:
            summary.append(SegmentSummary(name, n, totals[name], totals[name] / n if n else None))
    return summary
