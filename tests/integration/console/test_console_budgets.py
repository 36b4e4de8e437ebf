"""The DPO console's privacy budgets page (issue 29) through a real server, a real HTTP client and
headless Chromium: budgets set through the form, audited in the DPO's name, hostile values
refused with the reason shown, CSRF and sign-in required, and no person's id on the page."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from analytics import analysts, ledger
from analytics import dp as release_dp
from core import db
from core.config import Settings
from gdpr import actions
from tests.browser import Browser
from tests.helpers import query
from tests.integration.console.conftest import DPO, PASSWORD, Console
from tests.integration.console.test_console import assert_page

pytestmark = pytest.mark.integration

ANALYST = "ana"
FIRST = date(2026, 1, 5)
RANGE = f"above 0 and at most {actions.MAX_BUDGET_EPSILON:g}"  # what a refused epsilon's reason says


def an_analyst(settings: Settings, name: str = ANALYST) -> str:
    """An analyst account, as ``python -m analytics.accounts create`` makes it (as the owner)."""
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        analysts.create(cur, name, analysts.Role.ANALYST)
    return name


def people_with_purchases(settings: Settings, n: int) -> list[str]:
    """``n`` people in Germany, each with one day of activity on FIRST; their ids."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        for uid in ids:
            cur.execute("INSERT INTO users_pii (user_id) VALUES (%s)", (uid,))
            cur.execute(
                "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, 'DE', %s)", (uid, FIRST - timedelta(30))
            )
            cur.execute(
                "INSERT INTO analytics_person_days (event_date, user_id, page_views, add_to_carts, purchases, revenue,"
                " funnel_step) VALUES (%s, %s, 2, 1, 1, 10, 3)",
                (FIRST, uid),
            )
    return ids


def a_release(settings: Settings, analyst: str, epsilon: float) -> release_dp.Release:
    """A real differentially private release, as the analysts' API makes one."""
    with db.connection(settings.database, role=db.ANALYTICS_ROLE) as conn, conn, conn.cursor() as cur:
        return release_dp.release_daily_kpis(cur, analyst, first=FIRST, last=FIRST, epsilon=epsilon, bounds=settings.release)


def budgets_table(settings: Settings) -> list[tuple[object, ...]]:
    return query(settings, "SELECT analyst, epsilon, period, set_by FROM privacy_budgets ORDER BY analyst")


def test_the_dpo_sets_a_budget_which_is_kept_in_its_history_and_the_audit_trail(settings: Settings, console: Console) -> None:
    an_analyst(settings)
    assert console.login().status_code == 303
    page = console.http.get("/budgets")
    assert_page(page, 200, "No budget is set")
    assert f'<option value="{ANALYST}"' in page.text and f'<option value="{ledger.REPORT_ANALYST}"' in page.text

    done = console.http.post("/budgets", data={"csrf": console.csrf("/budgets"), "analyst": ANALYST, "epsilon": "2.5"})
    assert done.status_code == 303 and done.headers["location"] == "/budgets?done=set"
    assert budgets_table(settings) == [(ANALYST, pytest.approx(2.5), "year", f"dpo:{DPO}")]
    assert query(settings, "SELECT analyst, epsilon, set_by FROM privacy_budget_changes") == [
        (ANALYST, pytest.approx(2.5), f"dpo:{DPO}")
    ]
    audited = query(settings, "SELECT request_id, action, actor, details FROM privacy_audit_log")
    assert audited == [(0, "budget_set", f"dpo:{DPO}", {"analyst": ANALYST, "epsilon": 2.5, "period": "year"})]
    shown = console.http.get("/budgets?done=set")
    assert_page(shown, 200, "Budget set")
    assert f'<tr data-analyst="{ANALYST}">' in shown.text


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"analyst": ANALYST, "epsilon": "-1"}, RANGE),
        ({"analyst": ANALYST, "epsilon": "0"}, RANGE),
        ({"analyst": ANALYST, "epsilon": "nan"}, RANGE),
        ({"analyst": ANALYST, "epsilon": "inf"}, RANGE),
        ({"analyst": ANALYST, "epsilon": "1e309"}, RANGE),
        ({"analyst": ANALYST, "epsilon": str(int(actions.MAX_BUDGET_EPSILON) + 1)}, RANGE),
        ({"analyst": ANALYST, "epsilon": "1" * 500}, RANGE),
        ({"analyst": ANALYST, "epsilon": "two"}, "must be a number"),
        ({"analyst": ANALYST, "epsilon": ""}, "must be a number"),
        ({"analyst": "nobody", "epsilon": "1"}, "there is no analyst"),
        ({"analyst": "<script>alert(1)</script>", "epsilon": "1"}, "there is no analyst"),
        ({"analyst": "", "epsilon": "1"}, "there is no analyst"),
        ({"analyst": ANALYST, "epsilon": "1", "period": "decade"}, "a budget&#39;s period is one of"),
    ],
)
def test_a_hostile_budget_is_refused_with_the_reason_and_changes_nothing(
    settings: Settings, console: Console, fields: dict[str, str], reason: str
) -> None:
    an_analyst(settings)
    console.login()
    refused = console.http.post("/budgets", data={"csrf": console.csrf("/budgets"), **fields})
    assert_page(refused, 400, reason)
    assert "<script>" not in refused.text
    assert budgets_table(settings) == []
    assert query(settings, "SELECT count(*) FROM privacy_budget_changes") == [(0,)]
    assert query(settings, "SELECT count(*) FROM privacy_audit_log") == [(0,)]


def test_only_a_signed_in_dpo_with_the_pages_csrf_token_sets_a_budget(settings: Settings, console: Console) -> None:
    an_analyst(settings)
    fields = {"analyst": ANALYST, "epsilon": "1"}
    # Signed out: the page sends to the login, a POST is refused; an analyst's API token is no session.
    assert console.http.get("/budgets").headers["location"] == "/login"
    assert_page(console.http.post("/budgets", data=fields), 403, "sign in again")
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        _account, token = analysts.create(cur, "bob", analysts.Role.DPO)
    as_api = console.http.post("/budgets", data=fields, headers={"Authorization": f"Bearer {token}"})
    assert_page(as_api, 403, "sign in again")
    console.login()
    for csrf in ({}, {"csrf": "forged"}, {"csrf": ""}):
        assert_page(console.http.post("/budgets", data={**fields, **csrf}), 403, "security token is missing or stale")
    assert budgets_table(settings) == []
    # A disabled DPO's session ends: the page sends them to sign in again.
    query(settings, "UPDATE dpo_accounts SET disabled_at = now() WHERE username = %s", (DPO,))
    assert console.http.get("/budgets").headers["location"] == "/login"
    assert budgets_table(settings) == []


def test_a_dpo_sets_budgets_in_chromium_and_sees_a_release_spend_them(
    settings: Settings, console: Console, browser: Browser, tmp_path: Path
) -> None:
    an_analyst(settings)
    people = people_with_purchases(settings, 30)

    browser.open(console.url + "/login")
    browser.type("#username", DPO)
    browser.type("#password", PASSWORD)
    browser.click("#login button[type=submit]")
    browser.wait_for("location.pathname === '/'", what="the queue")
    browser.click("nav a[href='/budgets']")
    browser.wait_for("location.pathname === '/budgets' && document.querySelector('#set-budget')", what="the budgets page")

    def set_budget(analyst: str, epsilon: str) -> None:
        browser.evaluate(f"document.querySelector('#budget-analyst').value = {analyst!r}")
        browser.evaluate("document.querySelector('#budget-epsilon').value = ''")
        browser.type("#budget-epsilon", epsilon)
        browser.evaluate("window.submitted = true")
        browser.click("#set-budget button[type=submit]")
        browser.wait_for("!window.submitted && document.readyState === 'complete'", what="the page after the form")

    # A hostile value: refused, the reason shown beside the form, nothing set.
    set_budget(ANALYST, "1e309")
    assert RANGE in browser.text(".error")
    assert browser.evaluate("document.querySelector('table.budgets')") is None
    assert budgets_table(settings) == []

    set_budget(ANALYST, "3")
    assert "Budget set" in browser.text(".notice")
    set_budget(ledger.OVERALL, "10")
    assert budgets_table(settings) == [
        (ledger.OVERALL, pytest.approx(10), "year", f"dpo:{DPO}"),
        (ANALYST, pytest.approx(3), "year", f"dpo:{DPO}"),
    ]

    made = a_release(settings, ANALYST, 1.0)
    browser.open(console.url + "/budgets")
    browser.wait_for("document.querySelector('table.ledger')", what="the ledger's releases")
    row = f"table.budgets tr[data-analyst='{ANALYST}']"
    assert [float(browser.text(f"{row} td.{c}")) for c in ("epsilon", "spent", "left")] == [3.0, 1.0, made.budget_left]
    overall = "table.budgets tr[data-analyst='*']"
    assert [float(browser.text(f"{overall} td.{c}")) for c in ("epsilon", "spent", "left")] == [10.0, 1.0, 9.0]
    released = browser.evaluate("[...document.querySelectorAll('table.ledger td')].map(c => c.innerText)")
    assert ANALYST in released and release_dp.QUERY_DAILY_KPIS in released and release_dp.MECHANISM in released

    # No person's id anywhere on the page, though the release read thirty people's rows.
    html = browser.evaluate("document.documentElement.outerHTML")
    assert not [uid for uid in people if uid in html or uid.replace("-", "") in html]
    assert "user_id" not in html
    shot = browser.screenshot(tmp_path / "console_budgets.png")
    assert shot.read_bytes().startswith(b"\x89PNG")
