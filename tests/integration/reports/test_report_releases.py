"""The daily report's breakdown by country through differential privacy (analytics.dp) on the
real PostgreSQL: figures with their intervals for every public country, one ledger row per report
drawn from the budget ``report:daily``, a one-line refusal naming the command without a budget,
and the k-rule where REPORT_RELEASE_MODE=k says the DPO allowed it."""

from __future__ import annotations

import json

import pytest

from analytics import ledger
from core.config import Settings
from tests.helpers import query, run_command, set_report_budget
from tests.integration.analytics.test_releases import FIRST, seed

pytestmark = pytest.mark.integration

PEOPLE = {"DE": 40, "FR": 10}


def seed_day(settings: Settings) -> None:
    """People with day summaries on FIRST (analytics.dp's source) and the day's metrics (the report's)."""
    seed(settings, PEOPLE)
    query(
        settings,
        "INSERT INTO metrics_streaming_daily (event_date, event_type, total_events, total_amount)"
        " VALUES (%s, 'purchase', 50, 500)",
        (FIRST,),
    )


def report(env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = run_command("reports.generate_daily_report", FIRST.isoformat(), "--format", "md,json", env=env)
    return result.returncode, result.stdout, result.stderr


def test_the_report_releases_every_country_with_an_interval_and_a_ledger_row_per_report(settings: Settings) -> None:
    seed_day(settings)
    set_report_budget(settings, epsilon=10.0)
    for _ in range(2):
        code, out, err = report()
        assert code == 0, err
    assert "(differential privacy)" in out and " ± " in out
    data = json.loads((settings.reports_dir / f"business_report_{FIRST.isoformat()}.json").read_text(encoding="utf-8"))
    rows = {r["country"]: r for r in data["countries"]}
    assert set(rows) == set(settings.release.countries), "every public country, whoever was active"
    for row in rows.values():
        assert {kpi: row[kpi]["plus_minus"] > 0 for kpi in ("people", "purchases", "revenue")} == dict.fromkeys(
            ("people", "purchases", "revenue"), True
        )
    declared = data["countries_release"]
    assert declared["budget"] == ledger.REPORT_ANALYST and declared["unit"] == "person"
    assert declared["bounds"]["days_per_person"] == 1, "one day: a person is in it once"
    epsilon = settings.report_epsilon
    spent = query(settings, "SELECT analyst, epsilon FROM privacy_ledger ORDER BY id")
    assert spent == [(ledger.REPORT_ANALYST, pytest.approx(epsilon))] * 2


def test_without_the_report_s_budget_the_breakdown_is_withheld_naming_the_command(settings: Settings) -> None:
    """The design's command still writes the design's report (totals, batch vs streaming); only the
    breakdown that needs the budget is withheld, with the command that sets it, and nothing is spent."""
    seed_day(settings)
    code, out, err = report()
    assert code == 0, err
    assert "by country (withheld)" in out and " ± " not in out
    assert f"budget set --analyst {ledger.REPORT_ANALYST}" in out and "0 left" in out
    assert "withheld" in err, "the log says why"
    data = json.loads((settings.reports_dir / f"business_report_{FIRST.isoformat()}.json").read_text(encoding="utf-8"))
    assert data["countries"] is None and "budget set" in data["countries_withheld"]
    assert data["kpis"]["day"] == FIRST.isoformat()
    assert query(settings, "SELECT count(*) FROM privacy_ledger") == [(0,)]


def test_the_k_rule_where_the_dpo_allowed_it_spends_nothing(settings: Settings) -> None:
    seed_day(settings)
    code, out, err = report({"REPORT_RELEASE_MODE": "k"})
    assert code == 0, err
    assert "Revenue and users by country" in out and " ± " not in out
    assert query(settings, "SELECT count(*) FROM privacy_ledger") == [(0,)]
