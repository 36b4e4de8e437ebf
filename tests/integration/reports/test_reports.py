"""Reports for a day with known events: the Markdown files hold the right figures, the events
dropped for missing consent, and the consent ledger's grants and withdrawals (counts only)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2.errors
import pytest

from analytics import cohorts, funnels, scoring
from analytics.release import marker
from core import db
from core.cli import today_utc
from core.config import Settings
from core.events import user_uuid
from data_generators.generate_users import generated_user_id
from tests.helpers import query, run_command, set_report_budget
from tests.integration.analytics.test_summaries import shoppers

pytestmark = pytest.mark.integration

DAY = date(2026, 5, 4)


@pytest.fixture(autouse=True)
def report_budget(settings: Settings) -> None:
    """The report's by-country release draws from its budget (test_report_releases tests without one)."""
    set_report_budget(settings)


def insert_known_day(settings: Settings) -> None:
    """Five events on DAY: three page views, one add_to_cart, purchases of 19.99 and 10.51."""
    rows = [
        ("page_view", None), ("page_view", None), ("page_view", None), ("add_to_cart", None),
        ("purchase", "19.99"), ("purchase", "10.51"),
    ]  # fmt: skip
    for offset, (kind, amount) in enumerate(rows):
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, kafka_partition,"
            " kafka_offset) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, 0, %s)",
            (user_uuid(1), kind, f"{DAY.isoformat()}T12:00:00+00:00", DAY, amount, offset),
        )
    query(
        settings,
        "INSERT INTO metrics_streaming_daily (event_date, event_type, total_events, total_amount) VALUES"
        " (%(d)s, 'page_view', 3, 0), (%(d)s, 'add_to_cart', 1, 0), (%(d)s, 'purchase', 2, 30.50)",
        {"d": DAY},
    )


def test_business_report_file_has_the_day_figures(settings: Settings) -> None:
    insert_known_day(settings)
    assert run_command("batch.batch_metrics", DAY.isoformat()).returncode == 0
    result = run_command("reports.generate_daily_report", DAY.isoformat())
    assert result.returncode == 0, result.stderr
    path = settings.reports_dir / "business_report_2026-05-04.md"
    text = path.read_text(encoding="utf-8")
    assert str(path) in result.stdout
    assert "Events: **6**" in text
    assert "Revenue: **30.50 EUR**" in text
    assert "Figures from: **batch**" in text
    assert "| purchase | 2 | 2 | +0 | 30.50 | 30.50 | +0.00 |" in text
    assert "| page_view | 3 | 3 | +0 |" in text
    assert "agree exactly" in text


def test_business_report_for_a_day_without_data_says_so(settings: Settings) -> None:
    result = run_command("reports.generate_daily_report", "2020-01-01")
    assert result.returncode == 0
    text = (settings.reports_dir / "business_report_2020-01-01.md").read_text()
    assert "No events were recorded for 2020-01-01" in text and "There are no events at all yet." in text
    assert "No events were recorded for 2020-01-01" in result.stdout


def test_gdpr_audit_report_counts_requests_and_erasures(settings: Settings, tmp_path: Path) -> None:
    assert run_command("data_generators.generate_users", "--count", "5").returncode == 0
    [(email,)] = query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (generated_user_id(42, 2),))
    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s), ('ghost@example.invalid')", (email,))
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    query(settings, "INSERT INTO privacy_requests (email) VALUES ('later@example.invalid')")
    # A DPO's decisions: an extended request (still open), a hold in force.
    query(settings, "UPDATE privacy_requests SET due_at = due_at + interval '1 month' WHERE email = 'later@example.invalid'")
    query(
        settings,
        "INSERT INTO privacy_audit_log (request_id, action, actor)"
        " SELECT id, 'extended', 'dpo:test' FROM privacy_requests WHERE email = 'later@example.invalid'",
    )
    query(settings, "INSERT INTO legal_holds (email_hmac, reason, placed_by) VALUES ('x', 'litigation', 'dpo:test')")

    result = run_command("reports.gdpr_audit_report")
    assert result.returncode == 0, result.stderr
    [report] = list(settings.reports_dir.glob("gdpr_audit_report_*.md"))
    text = report.read_text(encoding="utf-8")
    assert "Privacy requests: **3** (2 answered, 1 open: unverified, pending or on hold)" in text
    assert "**0** denied (Art. 12(5)), **1** extended (Art. 12(3)); legal holds placed: **1**, active: **1**" in text
    assert "Users with anonymized PII: **1**" in text
    assert "| completed | 1 |" in text and "| not_found | 1 |" in text and "| pending | 1 |" in text
    assert str(email) not in text
    # The five users were made with consent; the erasure withdrew the erased one's, today.
    assert "Consent changes recorded: **5** grants, **1** withdrawals (1 recorded by erasures; 1 purpose)" in text
    assert f"| {datetime.now(UTC).date().isoformat()} | analytics | 0 | 1 | 1 |" in text


def insert_events(settings: Settings, day: date, rows: list[tuple[int, str, str | None, int]]) -> None:
    """(user number, event_type, amount, hour) rows on ``day``; user n is the n-th made with seed 3."""
    for offset, (number, kind, amount, hour) in enumerate(rows):
        user_id = generated_user_id(3, number)
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, kafka_partition,"
            " kafka_offset) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, 0, %s)",
            (user_id, kind, f"{day.isoformat()}T{hour:02d}:15:00+00:00", day, amount, offset),
        )


def known_history(settings: Settings) -> dict[str, str]:
    """40 users; DAY: every user views, even ids add to cart, ids divisible by 4 buy 10.00 at
    hour id % 24; the day before 10 views, a week before 20 views. Batch metrics for all three."""
    assert run_command("data_generators.generate_users", "--count", "40", "--seed", "3").returncode == 0
    rows: list[tuple[int, str, str | None, int]] = []
    for user in range(1, 41):
        rows.append((user, "page_view", None, user % 24))
        if user % 2 == 0:
            rows.append((user, "add_to_cart", None, user % 24))
        if user % 4 == 0:
            rows.append((user, "purchase", "10.00", user % 24))
    insert_events(settings, DAY, rows)
    insert_events(settings, DAY - timedelta(days=1), [(u, "page_view", None, 12) for u in range(1, 11)])
    insert_events(settings, DAY - timedelta(days=7), [(u, "page_view", None, 12) for u in range(1, 21)])
    result = run_command("batch.batch_metrics", "--from", (DAY - timedelta(days=7)).isoformat(), "--to", DAY.isoformat())
    assert result.returncode == 0, result.stderr
    return {str(u): str(c) for u, c in query(settings, "SELECT user_id, country FROM users_public")}


def test_business_report_figures_breakdowns_and_files(settings: Settings) -> None:
    countries = known_history(settings)
    # The k-rule's breakdown by country (where the DPO allowed it); test_report_releases: the DP one.
    k_rule = {"REPORT_RELEASE_MODE": "k"}
    result = run_command("reports.generate_daily_report", DAY.isoformat(), "--format", "md,html,json", env=k_rule)
    assert result.returncode == 0, result.stderr
    stem = settings.reports_dir / "business_report_2026-05-04"
    data = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))

    assert data["source"] == "batch" and data["min_cell_users"] == 5
    assert data["kpis"] == {"day": "2026-05-04", "source": "batch", "events": 70, "unique users": 40, "purchases": 10,
                            "revenue": "100.00", "average order value": "10.00"}  # fmt: skip
    assert data["previous_day"]["events"] == 10 and data["same_weekday_last_week"]["events"] == 20
    assert [s["users"] for s in data["funnel"]] == [40, 20, 10]
    # Countries: exact where at least 5 users, suppressed (and never the figure) below.
    users_by_country: dict[str, int] = defaultdict(int)
    buyers_by_country: dict[str, int] = defaultdict(int)
    for user in range(1, 41):
        users_by_country[countries[generated_user_id(3, user)]] += 1
        buyers_by_country[countries[generated_user_id(3, user)]] += user % 4 == 0
    shown = {c["country"]: c for c in data["countries"]}
    assert set(shown) == set(users_by_country)
    for country, row in shown.items():
        if row["users"] != "suppressed":
            assert row["users"] == users_by_country[country] >= 5
        if row["revenue"] != "suppressed":
            assert Decimal(row["revenue"]) == 10 * buyers_by_country[country]
            assert buyers_by_country[country] == 0 or buyers_by_country[country] >= 5
    assert any(users_by_country[c] < 5 for c in users_by_country), "the seed should give at least one small country"
    assert all(row["users"] == "suppressed" for c, row in shown.items() if users_by_country[c] < 5)
    # Hours: every page_view cell describes 1 or 2 users, so all of them are suppressed.
    assert set(data["events_per_hour"]["page_view"]) <= {"suppressed", 0}

    markdown = stem.with_suffix(".md").read_text(encoding="utf-8")
    assert "Events: **70** (+600.0 % vs previous day)" in markdown
    for png in re.findall(r"\]\((business_report_2026-05-04_[a-z_0-9]+\.png)\)", markdown):
        assert (settings.reports_dir / png).read_bytes().startswith(b"\x89PNG")
    html = stem.with_suffix(".html").read_text(encoding="utf-8")
    # The four charts of every day, the ordered funnel's (people viewed), and the retention heatmap's
    # where anybody signed up in its twelve weeks (the generated signups are relative to today).
    assert data["ordered_funnel"]["all"]["people"]["page_view"] == 40
    assert html.count('src="data:image/png;base64,') == 5 + bool(data["retention"]["cohorts"])
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html).lower()


def test_report_over_several_days_shows_progress(settings: Settings) -> None:
    known_history(settings)
    first = DAY - timedelta(days=7)
    result = run_command(
        "reports.generate_daily_report", "--from", first.isoformat(), "--to", DAY.isoformat(), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    assert "reports: 8/8" in result.stderr
    written = sorted(p.name for p in settings.reports_dir.glob("business_report_*.json"))
    assert written == [f"business_report_{(first + timedelta(days=i)).isoformat()}.json" for i in range(8)]
    assert not list(settings.reports_dir.glob("*.html"))


def test_wrong_format_is_a_clear_error(settings: Settings) -> None:
    result = run_command("reports.generate_daily_report", "--format", "pdf")
    assert result.returncode == 2 and "formats are a comma-separated list of md, html, json" in result.stderr


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_renders_in_headless_chromium_with_every_chart(settings: Settings, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        if os.environ.get("REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed (REQUIRE_CHROMIUM is set): apt-get install chromium")
        pytest.skip("chromium is not installed; `.ci/run` installs it")
    known_history(settings)
    assert run_command("reports.generate_daily_report", DAY.isoformat(), "--format", "html").returncode == 0
    page = (settings.reports_dir / "business_report_2026-05-04.html").resolve()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    body = re.search(r"<body[^>]*>", dom)
    assert body, f"chromium rendered no page: {dom[:300]!r}"
    expected = re.search(r'data-charts="(\d+)"', body.group(0))
    rendered = re.search(r'data-charts-rendered="(\d+)"', body.group(0))
    assert expected and int(expected.group(1)) >= 5  # the day's four, the ordered funnel's, the heatmap's if any cohort
    assert rendered, "the page's load handler did not run"
    assert rendered.group(1) == expected.group(1), "some charts did not decode"
    assert "Business report 2026-05-04" in dom
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1100,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=False)  # fmt: skip
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_gdpr_audit_report_has_html_json_and_its_chart(settings: Settings) -> None:
    assert run_command("data_generators.generate_users", "--count", "5").returncode == 0
    [(email,)] = query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (generated_user_id(42, 3),))
    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (email,))
    query(settings, "INSERT INTO privacy_requests (email, request_type) VALUES ('x@example.invalid', 'access')")
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    result = run_command("reports.gdpr_audit_report", "--format", "html,json")
    assert result.returncode == 0, result.stderr
    [html] = list(settings.reports_dir.glob("gdpr_audit_report_*.html"))
    [data_file] = list(settings.reports_dir.glob("gdpr_audit_report_*.json"))
    data = json.loads(data_file.read_text(encoding="utf-8"))
    assert data["total"] == 2 and data["residual_links_to_erased_users"] == 0
    assert sum(sum(day["received"].values()) for day in data["history"]) == 2
    page = html.read_text(encoding="utf-8")
    # No link out of the page: the chart is inline (its base64 text may spell "http" by chance).
    assert page.count('src="data:image/png;base64,') == 1
    assert "http" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page).lower()
    assert str(email) not in page and str(email) not in data_file.read_text(encoding="utf-8")
    assert not list(settings.reports_dir.glob("gdpr_audit_report_*.md"))


def drop(settings: Settings, group: str, day: date, reason: str, events: int) -> None:
    """Record what a consumer group dropped for lack of consent, as the consumers do."""
    query(
        settings,
        "INSERT INTO consent_dropped_daily (consumer_group, event_date, reason, dropped_events) VALUES (%s, %s, %s, %s)",
        (group, day, reason, events),
    )


def test_business_report_shows_the_events_dropped_for_missing_consent_beside_the_totals(settings: Settings) -> None:
    insert_known_day(settings)
    assert run_command("batch.batch_metrics", DAY.isoformat()).returncode == 0
    raw_group = f"raw-{uuid.uuid4().hex[:8]}"
    drop(settings, raw_group, DAY, "no_consent", 7)
    drop(settings, raw_group, DAY, "consent_withdrawn", 3)
    # Not the raw-events group, or not the day: not in the figure.
    drop(settings, settings.groups.raw_events, DAY, "no_consent", 1000)
    drop(settings, "streaming-metrics-test", DAY, "no_consent", 99)
    drop(settings, raw_group, DAY - timedelta(days=1), "no_consent", 50)

    result = run_command(
        "reports.generate_daily_report", DAY.isoformat(), env={"RAW_EVENTS_GROUP": raw_group, "CONSENT_MODE": "required"}
    )
    assert result.returncode == 0, result.stderr
    line = (
        "Events dropped for missing consent (not stored, not in any figure here): **10** (no_consent 7, consent_withdrawn 3);"
        " consent mode: **required**"
    )
    stem = settings.reports_dir / "business_report_2026-05-04"
    markdown = stem.with_suffix(".md").read_text(encoding="utf-8")
    assert line in result.stdout and line in markdown
    # Beside the totals: right after the day's events, which do not include the dropped ones.
    assert "- Events: **6**\n- " + line in markdown
    html = stem.with_suffix(".html").read_text(encoding="utf-8")
    assert "Events dropped for missing consent" in html and "<strong>10</strong> (no_consent 7, consent_withdrawn 3)" in html
    data = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["consent"] == {
        "mode": "required",
        "consumer_group": raw_group,
        "dropped_events": 10,
        "dropped_by_reason": {"no_consent": 7, "consent_withdrawn": 3},
    }
    assert data["kpis"]["events"] == 6


def test_business_report_says_0_dropped_when_every_event_had_consent(settings: Settings) -> None:
    insert_known_day(settings)
    result = run_command("reports.generate_daily_report", DAY.isoformat(), env={"CONSENT_MODE": "assumed"})
    assert result.returncode == 0, result.stderr
    assert (
        "Events dropped for missing consent (not stored, not in any figure here): **0** (no_consent 0, consent_withdrawn 0);"
        " consent mode: **assumed**" in result.stdout
    )


def test_a_day_whose_every_event_was_dropped_says_so_and_how_many(settings: Settings) -> None:
    drop(settings, settings.groups.raw_events, date(2020, 1, 1), "no_consent", 5)
    result = run_command("reports.generate_daily_report", "2020-01-01", "--format", "md")
    assert result.returncode == 0, result.stderr
    text = (settings.reports_dir / "business_report_2020-01-01.md").read_text(encoding="utf-8")
    assert "No events were recorded for 2020-01-01" in text
    assert "Events dropped for missing consent (not stored, not in any figure here): **5** (no_consent 5," in text


def ledger(settings: Settings, rows: list[tuple[str, bool, datetime, str]]) -> list[str]:
    """(purpose, granted, effective_at, source) rows for new random users; return their ids."""
    users = [str(uuid.uuid4()) for _ in rows]
    for user_id, (purpose, granted, effective_at, source) in zip(users, rows, strict=True):
        query(
            settings,
            "INSERT INTO consent_ledger (user_id, purpose, granted, effective_at, source) VALUES (%s, %s, %s, %s, %s)",
            (user_id, purpose, granted, effective_at, source),
        )
    return users


def test_gdpr_audit_report_counts_consent_grants_and_withdrawals_per_day_never_who(settings: Settings) -> None:
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)

    def at(day: date, hour: int) -> datetime:
        return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    users = ledger(
        settings,
        [
            ("analytics", True, at(yesterday, 9), "collector:web"),
            ("analytics", True, at(yesterday, 23), "generator"),
            ("marketing", True, at(yesterday, 10), "collector:web"),
            ("analytics", False, at(today, 0), "erasure"),
            ("marketing", False, at(today, 0), "erasure"),
            ("analytics", False, at(today, 0), "collector:web"),
            ("analytics", True, at(today - timedelta(days=100), 12), "generator"),  # counted, but before the 30 days
        ],
    )
    result = run_command("reports.gdpr_audit_report")
    assert result.returncode == 0, result.stderr
    [report] = list(settings.reports_dir.glob("gdpr_audit_report_*.md"))
    text = report.read_text(encoding="utf-8")
    assert "Consent changes recorded: **4** grants, **3** withdrawals (2 recorded by erasures; 2 purposes)" in text
    assert "Consent changes recorded: **4** grants" in result.stdout
    assert f"| {yesterday.isoformat()} | analytics | 2 | 0 | 0 |" in text
    assert f"| {yesterday.isoformat()} | marketing | 1 | 0 | 0 |" in text
    assert f"| {today.isoformat()} | analytics | 0 | 2 | 1 |" in text
    assert f"| {today.isoformat()} | marketing | 0 | 1 | 1 |" in text
    assert (today - timedelta(days=100)).isoformat() not in text
    data = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["consent"]["totals"] == {"granted": 4, "withdrawn": 3, "by_erasure": 2, "purposes": 2}
    assert {"day": today.isoformat(), "purpose": "analytics", "granted": 0, "withdrawn": 2, "by_erasure": 1} in data["consent"][
        "per_day"
    ]
    html = report.with_suffix(".html").read_text(encoding="utf-8")
    for output in (text, html, report.with_suffix(".json").read_text(encoding="utf-8"), result.stdout):
        assert not any(user_id in output for user_id in users)


def test_gdpr_audit_report_without_consent_records_says_none_changed(settings: Settings) -> None:
    result = run_command("reports.gdpr_audit_report", "--format", "md")
    assert result.returncode == 0, result.stderr
    assert "Consent changes recorded: **0** grants, **0** withdrawals (0 recorded by erasures; 0 purposes)" in result.stdout
    assert "No consent change took effect in the last 30 days (UTC)." in result.stdout


def test_the_auditor_role_reads_no_more_of_the_consent_ledger_than_the_report_needs(settings: Settings) -> None:
    """What the audit report's role may read: an attempt at the user ids is refused."""
    ledger(settings, [("analytics", True, datetime.now(UTC), "generator")])
    with db.connection(settings.database, role=db.AUDITOR_ROLE) as conn, conn.cursor() as cur:
        cur.execute("SELECT purpose, granted, effective_at, source, recorded_at FROM consent_ledger")
        assert len(cur.fetchall()) == 1
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT user_id FROM consent_ledger")


def test_gdpr_audit_report_shows_what_retention_removed_and_the_oldest_data_held(settings: Settings) -> None:
    today = datetime.now(UTC).date()
    old, kept = today - timedelta(days=400), today - timedelta(days=300)
    for day in (old, kept):
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, kafka_partition, kafka_offset)"
            " VALUES (gen_random_uuid(), %s, 'page_view', %s, %s, 0, 0)",
            (user_uuid(1), f"{day.isoformat()}T12:00:00+00:00", day),
        )
    query(
        settings,
        "INSERT INTO privacy_requests (email_hmac, status, outcome, processed_at) VALUES ('p', 'completed', 'done', %s)",
        (datetime.now(UTC) - timedelta(days=5),),
    )
    assert run_command("gdpr.retention", "--dry-run").returncode == 0  # not counted in the report
    assert run_command("gdpr.retention", "--only", "raw_events").returncode == 0

    result = run_command("reports.gdpr_audit_report", "--format", "md,json")
    assert result.returncode == 0, result.stderr
    assert (
        f"Retention (storage limitation, Art. 5(1)(e)): last run **{today}**; removed: raw events 1; oldest data held:"
        f" raw events from **{kept}**, dead letters: none, processed requests from **{today - timedelta(days=5)}**"
    ) in result.stdout
    assert f"| raw events | {today} " in result.stdout and "| 1 | 1 |" in result.stdout
    [data_file] = list(settings.reports_dir.glob("gdpr_audit_report_*.json"))
    data = json.loads(data_file.read_text(encoding="utf-8"))
    assert [k["kind"] for k in data["retention"]["kinds"]] == ["raw_events"]


def test_the_people_sections_equal_what_the_analyses_answer_and_today_says_it_has_none(settings: Settings) -> None:
    today = today_utc()
    day = today - timedelta(days=1)
    shoppers(settings, today)
    assert run_command("batch.batch_metrics", "--changed").returncode == 0
    result = run_command("reports.generate_daily_report", day.isoformat(), "--format", "md,html,json")
    assert result.returncode == 0, result.stderr
    stem = settings.reports_dir / f"business_report_{day.isoformat()}"
    data = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))

    k, window = settings.report_min_cell_users, settings.analytics_funnel_window_s
    with db.connection(settings.database, application_name="test", role=db.ANALYTICS_ROLE) as conn, conn, conn.cursor() as cur:
        retention = cohorts.retention(cur, first=cohorts.week_of(day) - timedelta(weeks=11), as_of=day, weeks=11)
        together = funnels.publishable(funnels.funnel(cur, day, day, window_s=window), k)
        by_country = funnels.publishable(funnels.funnel(cur, day, day, window_s=window, by_country=True), k)
    assert data["analyses_note"] is None
    assert data["retention"] == report_marks(cohorts.publishable(retention, k), k)
    assert len(data["retention"]["cohorts"]) >= 3 and data["retention"]["weeks"] == 11
    expected_funnel = {"day": day.isoformat(), "window_s": window, "by_country": by_country["rows"]}
    expected_funnel["all"] = together["rows"][0] if together["rows"] else None
    assert data["ordered_funnel"] == report_marks(expected_funnel, k)
    markdown = stem.with_suffix(".md").read_text(encoding="utf-8")
    assert "## Retention by signup week (people)" in markdown and "## Ordered funnel (people)" in markdown
    html = stem.with_suffix(".html").read_text(encoding="utf-8")
    assert 'alt="Retention by signup week (people)"' in html
    assert ('alt="Ordered funnel (people)"' in html) == (expected_funnel["all"] is not None)

    # Today is open: no summaries, one line in each section, and the rest of the report as ever.
    insert_events(settings, today, [(1, "page_view", None, 0)])
    result = run_command("reports.generate_daily_report", "--format", "md,json")
    assert result.returncode == 0, result.stderr
    line = f"No per-person summaries for {today.isoformat()}: the day is still open: summaries are built when it closes."
    assert result.stdout.count(line) == 2
    data = json.loads((settings.reports_dir / f"business_report_{today.isoformat()}.json").read_text(encoding="utf-8"))
    assert (data["analyses_note"], data["retention"], data["ordered_funnel"]) == (line, None, None)


def test_the_score_sections_are_the_library_s_summaries_of_the_stored_scores(settings: Settings) -> None:
    today = today_utc()
    day = today - timedelta(days=1)
    shoppers(settings, today)
    assert run_command("batch.batch_metrics", "--changed").returncode == 0
    # Before any scoring: one line each, and the report as ever.
    assert run_command("reports.generate_daily_report", day.isoformat(), "--format", "json").returncode == 0
    stem = settings.reports_dir / f"business_report_{day.isoformat()}"
    data = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    assert (data["rfm_segments"], data["lifetime_value"]) == (None, None)
    assert data["rfm_note"].startswith("No RFM scores are stored yet") and data["lifetime_value_note"]

    for module in ("analytics.rfm", "analytics.clv"):
        scored = run_command(module, "--skip-if-too-few")
        assert scored.returncode == 0, scored.stderr
    result = run_command("reports.generate_daily_report", day.isoformat(), "--format", "md,html,json")
    assert result.returncode == 0, result.stderr
    data = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    k = settings.report_min_cell_users
    with db.connection(settings.database, application_name="test", role=db.ANALYTICS_ROLE) as conn, conn, conn.cursor() as cur:
        rfm = scoring.stored_rfm(cur)
        clv = scoring.stored_clv(cur)
    assert rfm is not None and rfm.people > 0
    hidden = "suppressed"
    assert data["rfm_segments"]["as_of"] == rfm.as_of.isoformat() == day.isoformat()
    assert data["rfm_segments"]["segments"] == [
        {
            "segment": s.segment,
            "people": hidden if s.people is None else s.people,
            "total_value": hidden if s.people is None else scoring.money(s.total_value),
            "mean_value": None if s.people == 0 else hidden if s.people is None else scoring.money(s.mean_value),
        }
        for s in rfm.segments(k=k)
    ]
    markdown = stem.with_suffix(".md").read_text(encoding="utf-8")
    html = stem.with_suffix(".html").read_text(encoding="utf-8")
    assert "## RFM segments (people)" in markdown and 'alt="RFM segments (people)"' in html
    if clv is None:  # the seed's shoppers too few to fit: the section says so, the job did not fail
        assert data["lifetime_value"] is None and data["lifetime_value_note"] in markdown
    else:
        d = clv.distribution(k=k)
        assert data["lifetime_value"]["fit_id"] == clv.fit_id
        assert [b["people"] for b in data["lifetime_value"]["clv"]["buckets"]] == [
            hidden if b.people is None else b.people for b in d.buckets
        ]
        assert data["lifetime_value"]["clv"]["total"] == (hidden if d.total is None else scoring.money(d.total))
        assert 'alt="Customer lifetime value (buyers)"' in html
    charts = 4 + (data["ordered_funnel"]["all"] is not None) + bool(data["retention"]["cohorts"]) + 1 + (clv is not None)
    assert html.count('src="data:image/png;base64,') == charts


def report_marks(value: Any, k: int) -> Any:
    """What analytics publishes, its marker written as the report's JSON writes a hidden cell."""
    if value == marker(k):
        return "suppressed"
    if isinstance(value, dict):
        return {key: report_marks(v, k) for key, v in value.items()}
    if isinstance(value, list):
        return [report_marks(v, k) for v in value]
    return value
