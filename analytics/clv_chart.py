"""The calibration/holdout chart of a lifetime-value fit: actual and predicted holdout purchases by calibration frequency.

The standard check of a BG/NBD fit (Fader, Hardie & Lee 2005, figure 4): people are grouped by how
many repeat purchases they made in the calibration period, and each group's mean actual holdout
purchases is drawn beside the model's mean prediction for it. Groups that describe fewer than ``k``
people are suppressed as in the reports (analytics.release), and the chart says so.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from analytics.clv_model import Array
from analytics.release import DEFAULT_MIN_CELL_USERS, suppressed_cells

# Groups 0 .. 6 repeat purchases and "7+": beyond that the groups are thin in any real population
# (and in the published figures, which stop at 7+ too).
TOP_GROUP = 7
ACTUAL, PREDICTED, GREY = "#3e7cb1", "#f0a202", "#616e7c"


@dataclass(frozen=True)
class FrequencyGroup:
    """People with ``frequency`` repeat purchases in calibration (the last group: that many or more)."""

    label: str
    people: int
    mean_actual: float | None
    mean_predicted: float | None


def calibration_holdout_groups(
    frequency: Array, actual: Array, predicted: Array, *, k: int = DEFAULT_MIN_CELL_USERS
) -> list[FrequencyGroup]:
    """Mean actual and predicted holdout purchases per calibration frequency; small groups' means are None."""
    group = np.minimum(frequency, TOP_GROUP).astype(np.int64)
    sizes = {g: int(np.sum(group == g)) for g in range(TOP_GROUP + 1)}
    hidden = suppressed_cells(sizes, k)
    groups = []
    for g, n in sizes.items():
        label = f"{g}+" if g == TOP_GROUP else str(g)
        if n == 0 or g in hidden:
            groups.append(FrequencyGroup(label, n, None, None))
        else:
            members = group == g
            groups.append(FrequencyGroup(label, n, float(actual[members].mean()), float(predicted[members].mean())))
    return groups


def calibration_holdout_png(groups: list[FrequencyGroup], *, holdout_days: float, k: int = DEFAULT_MIN_CELL_USERS) -> bytes:
    """The chart as PNG bytes (matplotlib's object API: no display, the Agg renderer)."""
    fig = Figure(figsize=(8.0, 3.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(groups))
    nan = float("nan")
    ax.plot(positions, [nan if g.mean_actual is None else g.mean_actual for g in groups], marker="o",
            color=ACTUAL, label="actual")  # fmt: skip
    ax.plot(positions, [nan if g.mean_predicted is None else g.mean_predicted for g in groups], marker="s",
            linestyle="--", color=PREDICTED, label="predicted (BG/NBD)")  # fmt: skip
    ax.set_xticks(positions, [g.label for g in groups])
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel(f"mean purchases in the next {holdout_days:g} days")
    ax.legend(frameon=False, loc="upper left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    if any(g.people > 0 and g.mean_actual is None for g in groups):
        fig.text(0.01, 0.01, f"gaps: groups of fewer than {k} people are suppressed", fontsize=8, color=GREY)
    buffer = io.BytesIO()
    # No Software metadata: it carries a URL (as in reports.charts).
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
