"""``python -m analytics.clv``: fit the lifetime-value models (BG/NBD for purchases, Gamma-Gamma for
spend) on every buyer's history, store the fit and each buyer's predictions (replacing the
previous ones), and print the parameters with their 95 % intervals and the CLV distribution, small
cells suppressed (REPORT_MIN_CELL_USERS). ``--holdout-days N`` validates instead: fit on the days
before the last N, compare with what people did in them, beside the naive baseline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from analytics import scoring
from analytics.clv_chart import calibration_holdout_png
from core import cli, db
from core.config import Settings
from core.errors import InvalidInput

MEANINGS = {
    "r": "purchase rate: shape",
    "alpha": "purchase rate: scale (days)",
    "a": "drop-out chance: Beta a",
    "b": "drop-out chance: Beta b",
    "p": "spend: shape of a purchase's value",
    "q": "spend: shape across people",
    "gamma": "spend: scale across people",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analytics.clv",
        description="Customer lifetime value: fit BG/NBD (how many purchases, and who has stopped buying) and "
        "Gamma-Gamma (how much per purchase) by maximum likelihood on every buyer's purchase days, store the fit "
        "(analytics_clv_fits) and each buyer's P(alive), expected purchases and CLV over the horizon "
        "(analytics_clv_scores, replacing the previous ones; readable by the analytics logins only), and print the "
        "parameters with 95 %% intervals and the CLV distribution, cells under REPORT_MIN_CELL_USERS people "
        "suppressed. With --holdout-days N: fit on the days before the last N and compare the predicted purchases "
        "in those N days with what happened, beside the naive baseline (same rate as before); the stored "
        "predictions are left as they are. Connects as login_analytics (DB_PASSWORD_ANALYTICS).",
    )
    parser.add_argument(
        "--as-of",
        dest="as_of",
        type=cli.parse_day,
        help="use the histories up to this UTC day (default: the last summarised day)",
    )
    parser.add_argument(
        "--horizon-days",
        type=int,
        default=scoring.HORIZON_DAYS,
        help=f"the CLV horizon in days (default {scoring.HORIZON_DAYS})",
    )
    parser.add_argument("--holdout-days", type=int, help="validate: hold out the last N days and compare")
    parser.add_argument("--chart", type=Path, help="with --holdout-days: write the calibration/holdout chart (PNG) here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--skip-if-too-few",
        action="store_true",
        help="when there is too little data (no summarised day yet, or too few repeat buyers to fit), print one line saying so "
        "and exit 0 instead of failing with status 2: for the scheduler's nightly job on a young platform",
    )
    return parser


def parameters(models: scoring.Models) -> list[dict[str, Any]]:
    return [
        {"name": name, "value": value, "low": low, "high": high, "meaning": MEANINGS[name]}
        for name, (value, low, high) in models.parameters().items()
    ]


def derived(models: scoring.Models) -> dict[str, float]:
    """The parameters read as a business reads them."""
    return scoring.derived(models.parameters())


def publishable_fit(result: scoring.ClvResult, k: int) -> dict[str, Any]:
    d = result.distribution
    return {
        "fit_id": result.fit_id,
        "as_of": result.as_of.isoformat(),
        "horizon_days": result.horizon_days,
        "min_cell_users": k,
        "buyers": result.models.people if result.models.people >= k else None,
        "repeat_buyers": result.models.repeat_buyers if result.models.repeat_buyers >= k else None,
        "parameters": parameters(result.models),
        "intervals": result.models.intervals,
        "derived": derived(result.models),
        "clv": {
            "people": d.people,
            "total": scoring.money(d.total),
            "mean": scoring.money(d.mean),
            "buckets": [
                {"low": b.low, "high": b.high, "people": b.people, "total": scoring.money(b.total), "mean": scoring.money(b.mean)}
                for b in d.buckets
            ],
        },
    }


def publishable_validation(result: scoring.ValidationResult, k: int) -> dict[str, Any]:
    c = result.comparison
    return {
        "fit_id": result.fit_id,
        "as_of": result.as_of.isoformat(),
        "calibration_end": result.calibration_end.isoformat(),
        "holdout_days": result.holdout_days,
        "min_cell_users": k,
        "buyers": c.people if c.people >= k else None,
        "parameters": parameters(result.models),
        "intervals": result.models.intervals,
        "holdout": {
            "actual": c.actual_total,
            "predicted": c.predicted_total,
            "naive": c.naive_total,
            "predicted_error": c.total_error,
            "naive_error": (c.naive_total - c.actual_total) / c.actual_total,
            "mae": c.mae,
            "naive_mae": c.naive_mae,
            "mae_reduction": c.mae_reduction,
        },
        "by_calibration_frequency": [
            {"repeat_purchases": g.label, "mean_actual": g.mean_actual, "mean_predicted": g.mean_predicted} for g in result.groups
        ],
    }


NO_INTERVALS = (
    "no 95 % intervals: the history cannot identify every parameter (the likelihood is flat along some direction,"
    " e.g. drop-out in a short history); the estimates are a maximum of it, to be read with care"
)


def _parameter_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"{'parameter':<10} {'estimate':>11} {'95% interval':>25}  meaning"]
    for p in result["parameters"]:
        interval = "unavailable" if p["low"] is None or p["high"] is None else f"[{p['low']:.4g}, {p['high']:.4g}]"
        lines.append(f"{p['name']:<10} {p['value']:>11.4g} {interval:>25}  {p['meaning']}")
    if not result["intervals"]:
        lines.append(NO_INTERVALS)
    return lines


def _count(n: int | None) -> str:
    return "*" if n is None else f"{n:,}"


def fit_table(result: dict[str, Any]) -> str:
    d = result["derived"]
    lines = [
        f"lifetime value as of {result['as_of']} (fit {result['fit_id']}): {_count(result['buyers'])} buyers, "
        f"{_count(result['repeat_buyers'])} with a repeat purchase; cells under {result['min_cell_users']} people suppressed: *",
        *_parameter_lines(result),
        f"a buyer makes {d['mean_purchase_rate_per_year']:.2f} purchase days a year on average while active, drops out "
        f"after a repeat purchase with chance {d['mean_dropout_chance_per_repeat_purchase']:.1%}, and spends "
        f"{d['mean_purchase_value']:,.2f} a purchase day",
        "",
        f"CLV over the next {result['horizon_days']} days (undiscounted)",
        f"{'CLV from':>9} {'to':>9} {'people':>9} {'total':>14} {'mean':>10}",
    ]
    clv = result["clv"]
    for b in clv["buckets"]:
        high = "" if b["high"] is None else f"{b['high']:,.0f}"
        if b["people"] is None:
            lines.append(f"{b['low']:>9,.0f} {high:>9} {'*':>9} {'*':>14} {'*':>10}")
        else:
            mean = "" if b["mean"] is None else f"{b['mean']:,.2f}"
            lines.append(f"{b['low']:>9,.0f} {high:>9} {b['people']:>9,} {b['total']:>14,.2f} {mean:>10}")
    if clv["people"] is None:
        lines.append(f"{'all':>19} {'*':>9} {'*':>14} {'*':>10}")
    else:
        lines.append(f"{'all':>19} {clv['people']:>9,} {clv['total']:>14,.2f} {clv['mean'] or 0:>10,.2f}")
    return "\n".join(lines)


def validation_table(result: dict[str, Any]) -> str:
    h = result["holdout"]
    lines = [
        f"calibration up to {result['calibration_end']}, holdout of {result['holdout_days']} days up to {result['as_of']}"
        f" (fit {result['fit_id']}, {_count(result['buyers'])} buyers)",
        *_parameter_lines(result),
        "",
        f"{'holdout purchase days':<24} {'total':>10} {'vs actual':>10} {'per-person MAE':>15}",
        f"{'actual':<24} {h['actual']:>10,.0f}",
        f"{'predicted (BG/NBD)':<24} {h['predicted']:>10,.1f} {h['predicted_error']:>+10.1%} {h['mae']:>15.3f}",
        f"{'naive (same rate)':<24} {h['naive']:>10,.1f} {h['naive_error']:>+10.1%} {h['naive_mae']:>15.3f}",
        f"per-person error {h['mae_reduction']:.1%} below the naive baseline",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.horizon_days <= 3660:
        parser.error("--horizon-days is 1 to 3660")
    if args.holdout_days is not None and not 1 <= args.holdout_days <= 3660:
        parser.error("--holdout-days is 1 to 3660")
    if args.chart is not None and args.holdout_days is None:
        parser.error("--chart needs --holdout-days")

    def execute(settings: Settings) -> int:
        k = settings.report_min_cell_users
        connect = db.connection(settings.database, application_name="analytics_clv", role=db.ANALYTICS_MODEL_ROLE)
        try:
            with connect as conn, conn, conn.cursor() as cur:
                as_of = args.as_of or scoring.last_summarised(cur)
                scoring.check_as_of(cur, as_of)
                if args.holdout_days is None:
                    published = publishable_fit(scoring.score_clv(cur, as_of, k=k, horizon_days=args.horizon_days), k)
                    text = fit_table(published)
                else:
                    validation = scoring.validate_clv(cur, as_of, args.holdout_days, k=k)
                    published = publishable_validation(validation, k)
                    text = validation_table(published)
        except scoring.NotEnoughData as e:
            # Nothing was stored (the transaction rolled back): the previous fit and scores stay.
            if not args.skip_if_too_few:
                raise
            print(f"skipped: {e}")
            return 0
        if args.chart is not None:
            png = calibration_holdout_png(validation.groups, holdout_days=args.holdout_days, k=k)
            try:
                args.chart.write_bytes(png)
            except OSError as e:
                raise InvalidInput(f"cannot write the chart to {args.chart}: {e.strerror}") from e
        print(json.dumps(published, indent=2) if args.json else text)
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
