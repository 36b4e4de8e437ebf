"""Writes the calibration/holdout chart of a fit on a simulated population (the README's picture).

``python -m tests.clv_calibration_figure docs/clv_calibration.png``: 20,000 people drawn by
tests.clv_simulation (seed 28, the recovery test's), BG/NBD fitted on the calibration period,
its predictions for the 180-day holdout beside what the simulated people did.
"""

from __future__ import annotations

import sys
from pathlib import Path

from analytics import clv_chart, clv_model
from tests.clv_simulation import simulate


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/clv_calibration.png")
    population = simulate(20_000, seed=28)
    bgnbd = clv_model.fit_bgnbd(population.x, population.t_x, population.age).bgnbd()
    predicted = clv_model.expected_purchases(bgnbd, population.x, population.t_x, population.age, t=population.holdout_days)
    groups = clv_chart.calibration_holdout_groups(population.x, population.holdout, predicted)
    target.write_bytes(clv_chart.calibration_holdout_png(groups, holdout_days=population.holdout_days))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
