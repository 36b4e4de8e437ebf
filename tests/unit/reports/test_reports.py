"""Report logic without services: small-cell suppression, KPI figures, consent figures,
self-contained HTML."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from analytics import cohorts, funnels, rfm_model, scoring
from analytics.cohorts import Cohort, Retention
from analytics.funnels import Funnel, FunnelRow
from analytics.release import marker, suppressed_cells
from batch.reconcile import Comparison
from reports.audit_report import AuditFigures, ConsentDay, ConsentTotals, RetentionFigures, RetentionKind
from reports.audit_report import build_data as build_audit_data
from reports.audit_report import build_document as build_audit_document
from reports.business import Analyses, BusinessFigures, CountryRow, CustomerScores, DayKpis, HourCell, TrendDay, choose_source
from reports.charts import _duration_unit
from reports.daily_report import build_data, build_document
from reports.render import render_html, render_json, render_markdown

DAY = date(2026, 5, 4)  # a Monday
K = 5


def test_cells_below_k_are_suppressed_but_zero_is_not() -> None:
    assert suppressed_cells({"DE": 40, "FR": 0, "IT": 12}, K) == set()
    assert suppressed_cells({"DE": 40, "FR": 3, "IT": 2, "ES": 9}, K) == {"FR", "IT"}


def test_a_lone_small_cell_takes_the_next_smallest_with_it() -> None:
    # Only FR hidden: total minus the others would give FR back, so ES (the smallest) goes too.
    assert suppressed_cells({"DE": 40, "FR": 3, "ES": 9, "IT": 12}, K) == {"FR", "ES"}
    # Everything small: all hidden, nothing to give back.
    assert suppressed_cells({"a": 1, "b": 2}, K) == {"a", "b"}


def test_k_of_one_suppresses_nothing() -> None:
    assert suppressed_cells({"DE": 1}, 1) == set()


def test_source_is_batch_only_for_a_closed_day_the_batch_job_covered() -> None:
    covered = [Comparison("page_view", 3, Decimal(0), 3, Decimal(0))]
    uncovered = [Comparison("page_view", 0, Decimal(0), 3, Decimal(0))]
    assert choose_source(DAY, DAY + timedelta(days=1), covered) == "batch"
    assert choose_source(DAY, DAY + timedelta(days=1), uncovered) == "streaming"
    assert choose_source(DAY, DAY, covered) == "streaming"


def kpis(day: date, events: int, purchases: int, revenue: str, users: int) -> DayKpis:
    return DayKpis(day, "batch", events, purchases, Decimal(revenue), users, purchases, (users, users // 2, purchases))


def figures(*, with_data: bool = True) -> BusinessFigures:
    hourly = {kind: [HourCell(0, 0) for _ in range(24)] for kind in ("page_view", "add_to_cart", "purchase")}
    hourly["page_view"][9] = HourCell(120, 30)
    hourly["page_view"][10] = HourCell(20, 6)
    hourly["page_view"][3] = HourCell(4, 2)  # two night owls: must not show
    return BusinessFigures(
        day=DAY,
        today=DAY + timedelta(days=1),
        kpis=kpis(DAY, 200, 10, "250.00", 40) if with_data else kpis(DAY, 0, 0, "0", 0),
        previous_day=kpis(DAY - timedelta(days=1), 100, 8, "200.00", 30),
        same_weekday_last_week=kpis(DAY - timedelta(days=7), 400, 0, "0", 60),
        comparison=[Comparison("purchase", 10, Decimal("250.00"), 10, Decimal("250.00"))],
        hourly=hourly,
        hourly_revenue=[(Decimal("250.00"), 10) if h == 9 else (Decimal(0), 0) for h in range(24)],
        countries=[
            CountryRow("DE", 30, 8, 8, Decimal("200.00")),
            CountryRow("ES", 12, 6, 6, Decimal("60.00")),
            CountryRow("FR", 7, 1, 1, Decimal("40.00")),  # one buyer: revenue hidden
            CountryRow("IT", 3, 1, 1, Decimal("10.00")),  # three users: hidden
        ],
        trend=[TrendDay(DAY - timedelta(days=i), "batch", 100 + i, Decimal(i)) for i in range(13, -1, -1)],
        dead_letters={"not_json": 2},
    )


def test_business_figures_and_changes_are_right() -> None:
    data = build_data(figures(), K)
    assert data["kpis"]["events"] == 200 and data["kpis"]["revenue"] == Decimal("250.00")
    assert data["kpis"]["average order value"] == Decimal("25.00")
    text = render_markdown(build_document(figures(), K))
    assert "Events: **200** (+100.0 % vs previous day)" in text
    assert "Revenue: **250.00 EUR** (+25.0 % vs previous day)" in text
    assert "| events | 200 | 100 | +100.0 % | 400 | -50.0 % |" in text
    # No purchases a week ago: no average order value, and no change to compute.
    assert "| average order value (EUR) | 25.00 | 25.00 | +0.0 % | n/a | n/a |" in text
    assert "Figures from: **batch**" in text and "agree exactly" in text
    assert "dead letters received this day): **2**" in text


def test_small_cells_are_suppressed_and_marked_everywhere() -> None:
    data = build_data(figures(), K)
    countries = {c["country"]: c for c in data["countries"]}
    assert countries["DE"]["users"] == 30 and countries["DE"]["revenue"] == Decimal("200.00")
    # Users: IT has 3 (hidden); alone it would come back from the total, so FR (7, the
    # smallest shown) is hidden with it.
    assert countries["IT"]["users"] == "suppressed" and countries["FR"]["users"] == "suppressed"
    assert countries["ES"]["users"] == 12
    # Revenue counts buyers: FR and IT have one each (hidden), two together, so ES goes too.
    assert [countries[c]["revenue"] for c in ("FR", "IT", "ES")] == ["suppressed"] * 3
    assert data["events_per_hour"]["page_view"][3] == "suppressed"
    assert data["events_per_hour"]["page_view"][10] == "suppressed"  # else 3 comes back from the day total
    assert data["events_per_hour"]["page_view"][9] == 120
    text = render_markdown(build_document(figures(), K))
    assert f"| IT | {marker(K)} |" in text and "| DE | 30 | 8 | 200.00 |" in text
    assert not re.search(r"\b(40|10|60)\.00\b", text.split("## Revenue and users by country")[1].split("##")[0])
    json.loads(render_json(data))  # serialisable


def test_html_is_self_contained_and_embeds_every_chart_as_a_png() -> None:
    doc = build_document(figures(), K)
    html = render_html(doc)
    assert "http" not in html.lower()
    assert not re.search(r"<(link|iframe|object)\b", html) and not re.search(r"<script[^>]+src=", html)
    images = re.findall(r'<img class="chart" alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert [alt for alt, _ in images] == [c.title for c in doc.charts] and len(images) == 4
    assert all(base64.b64decode(b64).startswith(b"\x89PNG\r\n\x1a\n") for _alt, b64 in images)
    assert f'data-charts="{len(images)}"' in html


def test_markdown_links_one_png_per_chart() -> None:
    doc = build_document(figures(), K)
    text = render_markdown(doc, "business_report_2026-05-04")
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert links == [f"business_report_2026-05-04_{c.name}.png" for c in doc.charts]


def test_a_day_without_data_says_so_instead_of_empty_tables() -> None:
    doc = build_document(figures(with_data=False), K, latest=DAY - timedelta(days=2))
    text = render_markdown(doc)
    assert "No events were recorded for 2026-05-04" in text and "2026-05-02" in text
    assert not doc.charts


@pytest.mark.parametrize("k", [1, 5, 50])
def test_k_is_honoured(k: int) -> None:
    data = build_data(figures(), k)
    shown = [c for c in data["countries"] if c["users"] != "suppressed"]
    assert all(c["users"] >= k for c in shown)
    assert data["min_cell_users"] == k


def test_processing_times_are_charted_in_a_readable_unit() -> None:
    assert _duration_unit([0.2, None, 30.0]) == ("seconds", 1.0)
    assert _duration_unit([600.0]) == ("minutes", 60.0)
    assert _duration_unit([None, 3 * 86_400.0]) == ("hours", 3600.0)


def test_events_dropped_for_missing_consent_are_shown_per_reason_beside_the_totals() -> None:
    dropped = replace(
        figures(),
        consent_dropped={"no_consent": 12, "consent_withdrawn": 3},
        consent_group="raw-events-sink",
        consent_mode="required",
    )
    text = render_markdown(build_document(dropped, K))
    assert (
        "- Events: **200** (+100.0 % vs previous day)\n"
        "- Events dropped for missing consent (not stored, not in any figure here): **15** (no_consent 12, consent_withdrawn 3);"
        " consent mode: **required** (an event counts only if its user had analytics consent at its time)."
        " A withdrawal, objection or restriction stops counting a person's events from its time on;"
        " nothing counted before it is excluded retroactively\n"
    ) in text
    assert build_data(dropped, K)["consent"] == {
        "mode": "required",
        "consumer_group": "raw-events-sink",
        "dropped_events": 15,
        "dropped_by_reason": {"no_consent": 12, "consent_withdrawn": 3},
    }
    # Without a mode (not known), the line says the count and nothing about a mode.
    assert "Events dropped for missing consent (not stored, not in any figure here): **0**\n" in render_markdown(
        build_document(figures(), K)
    )


def test_a_day_without_stored_events_still_says_how_many_were_dropped_for_missing_consent() -> None:
    dropped = replace(
        figures(with_data=False), consent_dropped={"no_consent": 40, "consent_withdrawn": 0}, consent_mode="required"
    )
    text = render_markdown(build_document(dropped, K, latest=None))
    assert "No events were recorded for 2026-05-04" in text and "**40** (no_consent 40, consent_withdrawn 0)" in text


def audit(totals: ConsentTotals, history: list[ConsentDay]) -> AuditFigures:
    return AuditFigures({}, 0, None, 0, 0, {}, {}, consent_totals=totals, consent_history=history)


def test_the_audit_report_counts_consent_grants_and_withdrawals_per_day_and_purpose() -> None:
    history = [ConsentDay(DAY, "analytics", 2, 1, 1), ConsentDay(DAY, "marketing", 0, 1, 1)]
    doc = build_audit_document(audit(ConsentTotals(granted=5, withdrawn=2, by_erasure=2, purposes=2), history), DAY)
    text = render_markdown(doc)
    assert "Consent changes recorded: **5** grants, **2** withdrawals (2 recorded by erasures; 2 purposes)" in text
    assert "| 2026-05-04 | analytics | 2 | 1 | 1 |" in text and "| 2026-05-04 | marketing | 0 | 1 | 1 |" in text
    data = build_audit_data(audit(ConsentTotals(5, 2, 2, 2), history), DAY)
    assert data["consent"]["totals"] == {"granted": 5, "withdrawn": 2, "by_erasure": 2, "purposes": 2}
    assert data["consent"]["per_day"][1] == {"day": DAY, "purpose": "marketing", "granted": 0, "withdrawn": 1, "by_erasure": 1}
    empty = render_markdown(build_audit_document(audit(ConsentTotals(), []), DAY))
    assert "**0** grants, **0** withdrawals (0 recorded by erasures; 0 purposes)" in empty
    assert "No consent change took effect in the last 30 days (UTC)." in empty


def test_the_audit_report_shows_what_retention_removed_and_the_oldest_data_held() -> None:
    at = datetime(2026, 5, 4, 3, 15, tzinfo=UTC)
    kinds = [
        RetentionKind("raw_events", at, date(2025, 4, 4), 1_204, 1_204_332),
        RetentionKind("dead_letters", at - timedelta(days=1), date(2026, 4, 3), 0, 12),
        RetentionKind("reports", at, date(2025, 3, 30), 0, 0),
    ]
    figures = replace(
        audit(ConsentTotals(), []),
        retention=RetentionFigures(kinds, date(2025, 4, 4), None, date(2023, 5, 5)),
    )
    text = render_markdown(build_audit_document(figures, DAY))
    assert (
        "Retention (storage limitation, Art. 5(1)(e)): last run **2026-05-04**; removed: raw events 1,204,332,"
        " dead letters 12; oldest data held: raw events from **2025-04-04**, dead letters: none,"
        " processed requests from **2023-05-05**"
    ) in text
    assert "| raw events | 2026-05-04 03:15 | 2025-04-04 | 1,204 | 1,204,332 |" in text
    assert "| dead letters | 2026-05-03 03:15 | 2026-04-03 | 0 | 12 |" in text
    data = json.loads(render_json(build_audit_data(figures, DAY)))
    assert data["retention"]["last_run"] == "2026-05-04T03:15:00+00:00"
    assert data["retention"]["kinds"][0] == {
        "kind": "raw_events", "last_run": "2026-05-04T03:15:00+00:00", "last_cutoff": "2025-04-04", "last_removed": 1_204,
        "removed": 1_204_332,
    }  # fmt: skip
    assert data["retention"]["oldest_held"] == {
        "raw_events": "2025-04-04",
        "dead_letters": None,
        "processed_requests": "2023-05-05",
    }
    never = render_markdown(build_audit_document(audit(ConsentTotals(), []), DAY))
    assert "Retention (storage limitation, Art. 5(1)(e)): never run (`python -m gdpr.retention`); removed: nothing yet;" in never
    assert "Retention has not run yet." in never


def people_analyses() -> Analyses:
    """Three signup cohorts (one of 3 people: shown by its week only) as of DAY, weeks not begun
    None; the day's ordered funnel together and in three countries (IT small)."""
    weeks = 11
    first = DAY - timedelta(weeks=2)
    retention = Retention(
        "signup",
        DAY,
        weeks,
        [
            Cohort(first, None, 40, [40, 22, 12, *([None] * (weeks - 2))]),
            Cohort(first + timedelta(weeks=1), None, 3, [3, 1, *([None] * (weeks - 1))]),
            Cohort(DAY, None, 25, [25, *([None] * weeks)]),
        ],
    )
    rows = [FunnelRow(DAY, None, 60, 30, 12, 95.0, 310.5)]
    by_country = [
        FunnelRow(DAY, "DE", 40, 20, 9, 80.0, 300.0),
        FunnelRow(DAY, "FR", 17, 8, 2, 120.0, 400.0),
        FunnelRow(DAY, "IT", 3, 2, 1, 30.0, 20.0),
    ]
    return Analyses(
        retention=retention,
        funnel=Funnel(3600, DAY, DAY, rows, []),
        funnel_by_country=Funnel(3600, DAY, DAY, by_country, []),
    )


def with_analyses(analyses: Analyses) -> BusinessFigures:
    return replace(figures(), analyses=analyses)


def as_report_marks(value: object) -> object:
    """What analytics publishes, with its marker written as the report's JSON writes a hidden cell."""
    if value == marker(K):
        return "suppressed"
    if isinstance(value, dict):
        return {key: as_report_marks(v) for key, v in value.items()}
    if isinstance(value, list):
        return [as_report_marks(v) for v in value]
    return value


def test_the_people_sections_are_what_analytics_publishes_with_the_report_s_marks() -> None:
    analyses = people_analyses()
    assert analyses.retention is not None and analyses.funnel is not None and analyses.funnel_by_country is not None
    data = build_data(with_analyses(analyses), K)
    assert data["retention"] == as_report_marks(cohorts.publishable(analyses.retention, K))
    together = funnels.publishable(analyses.funnel, K)
    by_country = funnels.publishable(analyses.funnel_by_country, K)
    assert data["ordered_funnel"] == as_report_marks(
        {"day": "2026-05-04", "window_s": 3600, "all": together["rows"][0], "by_country": by_country["rows"]}
    )
    assert data["analyses_note"] is None
    # The small cohort and country are hidden; weeks not begun are null, not 0.
    small = data["retention"]["cohorts"][1]
    assert small["size"] == "suppressed" and small["share"][:2] == ["suppressed"] * 2 and small["share"][2] is None
    italy = data["ordered_funnel"]["by_country"][2]
    assert italy["people"] == {"page_view": "suppressed", "add_to_cart": "suppressed", "purchase": "suppressed"}
    json.loads(render_json(data))


def test_the_people_sections_render_a_heatmap_and_a_funnel_with_their_tables() -> None:
    doc = build_document(with_analyses(people_analyses()), K)
    text = render_markdown(doc, "business_report_2026-05-04")
    assert [c.name for c in doc.charts][-2:] == ["ordered_funnel", "retention"]
    retention = text.split("## Retention by signup week (people)")[1].split("\n## ")[0]
    first = (DAY - timedelta(weeks=2)).isoformat()
    # Shares as the report writes them, weeks not begun blank, a small cohort by its week only.
    assert f"| {first} | 40 | 100.0% | 55.0% | 30.0% |  |" in retention
    assert f"| {(DAY - timedelta(weeks=1)).isoformat()} | {marker(K)} | {marker(K)} | {marker(K)} |  |" in retention
    funnel = text.split("## Ordered funnel (people)")[1].split("\n## ")[0]
    assert "within 60 minutes of the page view" in funnel
    assert "| all countries | 60 | 30 | 12 | 50.0% | 40.0% | 20.0% | 95 s | 5.2 min |" in funnel
    assert f"| IT | {marker(K)} | {marker(K)} | {marker(K)} |" in funnel
    html = render_html(doc)
    assert html.count('src="data:image/png;base64,') == 6


def test_a_day_without_summaries_says_so_in_one_line_per_section() -> None:
    line = "No per-person summaries for 2026-05-04: the day is still open: summaries are built when it closes."
    doc = build_document(with_analyses(Analyses(missing=line)), K)
    text = render_markdown(doc)
    for title in ("Retention by signup week (people)", "Ordered funnel (people)"):
        assert f"## {title}\n\n{line}\n\n## " in text
    assert len(doc.charts) == 4
    data = build_data(with_analyses(Analyses(missing=line)), K)
    assert (data["analyses_note"], data["retention"], data["ordered_funnel"]) == (line, None, None)
    # A funnel refused for its window still shows the retention.
    refused = build_document(with_analyses(replace(people_analyses(), funnel=None, funnel_refused="window 600 s")), K)
    assert "## Ordered funnel (people)\n\nwindow 600 s\n" in render_markdown(refused)
    assert [c.name for c in refused.charts][-1] == "retention"


def stored_scores() -> CustomerScores:
    """Scores as the commands store them: 80 buyers scored by the RFM model (some segments small,
    some empty), and lifetime values spread over the buckets (the 500+ bucket small)."""
    measures = [rfm_model.Rfm(float((i * 13) % 120), 1 + (i * 4) % 6 if i % 3 else 1, 10.0 + (i * 13) % 200) for i in range(80)]
    rfm = scoring.StoredRfm(DAY, measures, rfm_model.score(measures))
    clv = [0.5 * i for i in range(40)] + [30.0 + 9 * i for i in range(30)] + [600.0, 900.0]
    parameters = {name: (0.5 + i, 0.4 + i, 0.6 + i) for i, name in enumerate(("r", "alpha", "a", "b", "p", "q", "gamma"))}
    return CustomerScores(rfm, scoring.StoredClv(7, DAY, 365, 80, 31, parameters, clv))


def hidden(value: object) -> object:
    return "suppressed" if value is None else value


def test_the_score_sections_are_the_library_s_summaries_of_the_stored_scores() -> None:
    scores = stored_scores()
    assert scores.rfm is not None and scores.clv is not None
    data = build_data(replace(figures(), scores=scores), K)
    summary = rfm_model.segment_summary(scores.rfm.measures, scores.rfm.scores, k=K)
    assert data["rfm_segments"] == {
        "as_of": DAY,
        "people": 80,
        "segments": [
            {
                "segment": s.segment,
                "people": hidden(s.people),
                "total_value": hidden(scoring.money(s.total_value)),
                "mean_value": None if s.people == 0 else hidden(scoring.money(s.mean_value)),
            }
            for s in summary
        ],
    }
    assert any(s.suppressed for s in summary) and any(s.people == 0 for s in summary), "the example shows both"
    distribution = scoring.clv_distribution(scores.clv.clv, k=K)
    lifetime = data["lifetime_value"]
    assert lifetime["clv"]["people"] == distribution.people == 72
    assert lifetime["clv"]["total"] == scoring.money(distribution.total)
    assert [b["people"] for b in lifetime["clv"]["buckets"]] == [hidden(b.people) for b in distribution.buckets]
    assert [b["total"] for b in lifetime["clv"]["buckets"]] == [hidden(scoring.money(b.total)) for b in distribution.buckets]
    assert lifetime["clv"]["buckets"][-1]["people"] == "suppressed"
    assert lifetime["derived"] == scoring.derived(scores.clv.parameters)
    assert lifetime["parameters"]["gamma"] == {"value": 6.5, "low": 6.4, "high": 6.6}
    assert (data["rfm_note"], data["lifetime_value_note"]) == (None, None)
    json.loads(render_json(data))

    doc = build_document(replace(figures(), scores=scores), K)
    assert [c.name for c in doc.charts][-2:] == ["rfm_segments", "lifetime_value"]
    assert render_html(doc).count('src="data:image/png;base64,') == len(doc.charts) == 6
    text = render_markdown(doc)
    rfm = text.split("## RFM segments (people)")[1].split("\n## ")[0]
    loyal = next(s for s in summary if s.segment == rfm_model.LOYAL)
    assert loyal.people and loyal.total_value is not None and loyal.mean_value is not None
    assert (
        f"| loyal customers | {loyal.people} | {loyal.people / 80:.1%} | {loyal.total_value:,.2f} | {loyal.mean_value:,.2f} |"
    ) in rfm
    assert all(f"| {s.segment} | {marker(K)} |" in rfm for s in summary if s.suppressed)
    clv = text.split("## Customer lifetime value (buyers)")[1].split("\n## ")[0]
    assert "gamma = 6.5 [6.4, 6.6]" in clv and f"| 500+ | {marker(K)} |" in clv
    assert f"| all | 72 | {distribution.total:,.2f} |" in clv


def test_without_stored_scores_each_score_section_says_so_in_one_line() -> None:
    data = build_data(figures(), K)
    assert (data["rfm_segments"], data["lifetime_value"]) == (None, None)
    doc = build_document(figures(), K)
    text = render_markdown(doc)
    notes = {"RFM segments (people)": data["rfm_note"], "Customer lifetime value (buyers)": data["lifetime_value_note"]}
    for title, note in notes.items():
        assert note and f"## {title}\n\n{note}\n\n## " in text
    assert [c.name for c in doc.charts] == ["events_per_hour", "revenue_per_hour", "funnel", "trend_14_days"]
    # RFM stored, the fit not yet (too few repeat buyers): the table, and the line for the rest.
    only_rfm = replace(stored_scores(), clv=None)
    data = build_data(replace(figures(), scores=only_rfm), K)
    assert data["rfm_segments"] is not None and data["lifetime_value"] is None and data["lifetime_value_note"]
