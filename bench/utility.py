"""``python -m bench.utility``: the bounds the data suggest and what differential privacy costs in
accuracy, on the data in the database (the demo's after ``make demo``): per-person-day quantiles,
the relative error per figure of a 30-day by-country release at epsilon 0.1, 1 and 4, and the
share of cells published against today's k-rule. Prints Markdown for docs/privacy_releases.md.

The releases are made in a transaction that is rolled back, under a budget set in it: nothing is
spent or kept, and the noisy figures are compared with the true ones only here.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import date, timedelta
from typing import cast

import psycopg2.extensions

from analytics import dp, ledger
from analytics import release_tuning as tuning
from core import cli, db
from core.config import ReleaseSettings, Settings

EPSILONS = (0.1, 1.0, 4.0)
DAYS = 30
REPEATS = 5  # releases per epsilon: the error is the median over cells of all of them
BENCH_ANALYST = "bench:utility"


def _errors(
    conn: psycopg2.extensions.connection,
    cur: db.Cursor,
    true: dict[str, dict[tuple[date, str], float]],
    *,
    first: date,
    last: date,
    epsilon: float,
    bounds: ReleaseSettings,
) -> dict[str, list[float]]:
    """Per KPI, the median relative error of each of REPEATS releases at ``epsilon`` (rolled back)."""
    errors: dict[str, list[float]] = defaultdict(list)
    for _ in range(REPEATS):
        ledger.set_budget(cur, BENCH_ANALYST, epsilon, "bench")
        ledger.set_budget(cur, ledger.OVERALL, 1e6, "bench")
        made = dp.release_daily_kpis(cur, BENCH_ANALYST, first=first, last=last, epsilon=epsilon, bounds=bounds)
        conn.rollback()  # nothing spent, nothing kept
        for kpi in dp.KPIS:
            # The release keys its cells (day, country), as the true figures are.
            noisy = {cast(tuple[date, str], cell): figures[kpi].value for cell, figures in made.cells.items()}
            error = tuning.relative_error(noisy, {c: v for c, v in true[kpi].items() if c in noisy})
            if error is not None:
                errors[kpi].append(error)
    return errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.utility", description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=DAYS, help=f"the release's range, ending on the last summarised day ({DAYS})")
    args = parser.parse_args(argv)
    if not 1 <= args.days <= dp.MAX_RANGE_DAYS:
        parser.error(f"--days is 1 to {dp.MAX_RANGE_DAYS}")

    def execute(settings: Settings) -> int:
        with db.connection(settings.database, application_name="bench_utility") as conn, conn.cursor() as cur:
            cur.execute("SELECT page_views + add_to_carts + purchases, purchases, revenue FROM analytics_person_days")
            days = [(int(e), int(p), float(s)) for e, p, s in cur.fetchall()]
            chosen = tuning.choose_bounds(days)
            print(f"person-days: {len(days):,}; at the {tuning.BOUND_QUANTILE:.0%} quantile of the days with any:")
            print(f"- events {chosen.events} (keeps {chosen.kept['events']:.2%} whole), purchases {chosen.purchases}"
                  f" ({chosen.kept['purchases']:.2%}), spend {chosen.spend} EUR ({chosen.kept['spend']:.2%})")  # fmt: skip
            cur.execute("SELECT max(event_date) FROM analytics_person_days")
            row = cur.fetchone()
            if row is None or row[0] is None:
                print("no day summaries: run `make demo` (or `python -m batch.batch_metrics`) first")
                return 1
            last = row[0] - timedelta(days=1)  # the last full day: the newest may still be open
            first = last - timedelta(days=args.days - 1)
            bounds = settings.release
            cur.execute(dp.BOUNDED_DAYS, {"first": first, "last": last, "max_days": bounds.max_days,
                "max_events": bounds.max_events_per_day, "max_purchases": bounds.max_purchases_per_day,
                "max_spend": bounds.max_spend_per_day})  # fmt: skip
            true: dict[str, dict[tuple[date, str], float]] = {kpi: defaultdict(float) for kpi in dp.KPIS}
            for day, country, events, purchases, cents in cur.fetchall():
                for kpi, value in zip(dp.KPIS, (1, events, purchases, cents / 100), strict=True):
                    true[kpi][(day, country)] += value
            print(f"\nA {args.days}-day release by country ({first} to {last}), {len(bounds.countries)} countries;"
                  f" median relative error over the cells with any, {REPEATS} releases each:\n")  # fmt: skip
            print("| epsilon | " + " | ".join(dp.KPIS) + " |")
            print("| ---: |" + " ---: |" * len(dp.KPIS))
            for epsilon in EPSILONS:
                errors = _errors(conn, cur, true, first=first, last=last, epsilon=epsilon, bounds=bounds)
                print(f"| {epsilon:g} | " + " | ".join(f"{sorted(v)[len(v) // 2]:.1%}" for v in errors.values()) + " |")
            by_day: dict[date, dict[str, int]] = defaultdict(dict)
            for (day, country), n in true["people"].items():
                by_day[day][country] = int(n)
            k = settings.report_min_cell_users
            for name, published in (
                (f"k-rule (k = {k})", tuning.k_rule_published(list(by_day.values()), k)),
                ("DP, public keys", tuning.public_keys_published(list(by_day.values()))),
            ):
                print(f"\n{name}: {published.published}/{published.cells} cells with people published,"
                      f" {published.large_published}/{published.large} of those with {tuning.LARGE_CELL_PEOPLE} people or more")  # fmt: skip
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
