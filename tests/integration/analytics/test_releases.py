"""Differentially private releases on the real PostgreSQL (sql/043, sql/044, analytics.dp): a
release of the daily KPIs by country with intervals, its ledger row and the budget left; a
release past a budget refused before anything is recorded; two releases racing for the last of a
budget; the ledger append-only and its chain checked by gdpr.verify_audit."""

from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta
from typing import Any

import psycopg2
import pytest

from analytics import dp as release_dp
from analytics import ledger
from core import db
from core.config import ReleaseSettings, Settings
from tests.helpers import query, run_command

pytestmark = pytest.mark.integration

FIRST = date(2026, 1, 5)
DAYS = 3


def as_releaser(settings: Settings) -> Any:
    return db.connection(settings.database, application_name="test", role=db.ANALYTICS_ROLE)


def seed(settings: Settings, people: dict[str, int]) -> None:
    """``people[country]`` people, each active on every day of the range with 3 events and 1 purchase of 10 EUR."""
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        for country, n in people.items():
            for _ in range(n):
                uid = uuid.uuid4()
                cur.execute("INSERT INTO users_pii (user_id) VALUES (%s)", (str(uid),))
                cur.execute(
                    "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, %s, %s)",
                    (str(uid), country, FIRST - timedelta(days=30)),
                )
                for d in range(DAYS):
                    cur.execute(
                        "INSERT INTO analytics_person_days (event_date, user_id, page_views, add_to_carts, purchases,"
                        " revenue, funnel_step) VALUES (%s, %s, 1, 1, 1, 10, 3)",
                        (FIRST + timedelta(days=d), str(uid)),
                    )


def set_budgets(settings: Settings, analyst: str, epsilon: float, overall: float = 100.0) -> None:
    with db.connection(settings.database, role=db.CONSOLE_ROLE) as conn, conn, conn.cursor() as cur:
        ledger.set_budget(cur, analyst, epsilon, "dpo:test")
        ledger.set_budget(cur, ledger.OVERALL, overall, "dpo:test")


def release(settings: Settings, analyst: str, epsilon: float) -> release_dp.Release:
    with as_releaser(settings) as conn, conn, conn.cursor() as cur:
        return release_dp.release_daily_kpis(
            cur, analyst, first=FIRST, last=FIRST + timedelta(days=DAYS - 1), epsilon=epsilon, bounds=settings.release
        )


def test_a_release_carries_intervals_a_ledger_row_and_the_budget_left(settings: Settings) -> None:
    seed(settings, {"DE": 40, "FR": 10})
    set_budgets(settings, "ana", 3.0)
    made = release(settings, "ana", 1.0)
    keys = {(FIRST + timedelta(days=d), c) for d in range(DAYS) for c in settings.release.countries}
    assert set(made.cells) == keys, "every public cell, none more"
    people = made.cells[(FIRST, "DE")]["people"]
    assert people.low <= people.value <= people.high and people.half_width > 0
    assert made.declaration["unit"] == "person" and made.declaration["epsilon"] == pytest.approx(1.0)
    assert made.budget_left == pytest.approx(2.0)
    rows = query(settings, "SELECT analyst, query, mechanism, epsilon FROM privacy_ledger")
    assert rows == [("ana", release_dp.QUERY_DAILY_KPIS, release_dp.MECHANISM, pytest.approx(1.0))]
    verified = run_command("gdpr.verify_audit")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "privacy ledger whole: 1 rows" in verified.stdout


def test_a_release_past_the_budget_is_refused_before_anything_is_recorded(settings: Settings) -> None:
    seed(settings, {"DE": 5})
    set_budgets(settings, "ana", 1.5)
    release(settings, "ana", 1.0)
    with pytest.raises(ledger.BudgetExhausted) as refused:
        release(settings, "ana", 1.0)
    assert refused.value.left == pytest.approx(0.5)
    assert query(settings, "SELECT count(*) FROM privacy_ledger") == [(1,)]
    with pytest.raises(ledger.BudgetExhausted):
        release(settings, "nobody", 0.1)  # no budget set: nothing to spend


def test_two_releases_racing_for_the_last_of_a_budget_do_not_both_pass(settings: Settings) -> None:
    seed(settings, {"DE": 5})
    set_budgets(settings, "ana", 1.0)
    outcome: list[BaseException | None] = []
    with as_releaser(settings) as first, first.cursor() as cur:
        ledger.reserve(cur, "ana", 1.0)
        ledger.record(cur, "ana", "test", mechanism="test", epsilon=1.0, details={})

        def second() -> None:
            try:
                release(settings, "ana", 1.0)
                outcome.append(None)
            except ledger.BudgetExhausted as e:
                outcome.append(e)

        racer = threading.Thread(target=second)
        racer.start()
        # The second waits on the budget row's lock while the first holds it.
        for _ in range(600):
            waiting = query(settings, "SELECT count(*) FROM pg_locks WHERE NOT granted")
            if waiting == [(1,)]:
                break
            racer.join(0.05)
        assert waiting == [(1,)], "the second release does not wait for the first"
        first.commit()
    racer.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], ledger.BudgetExhausted)
    assert query(settings, "SELECT count(*) FROM privacy_ledger") == [(1,)]


def test_the_ledger_is_append_only_and_a_changed_row_breaks_the_chain(settings: Settings) -> None:
    seed(settings, {"DE": 5})
    set_budgets(settings, "ana", 5.0)
    release(settings, "ana", 1.0)
    release(settings, "ana", 1.0)
    with as_releaser(settings) as conn, conn.cursor() as cur, pytest.raises(psycopg2.Error):
        cur.execute("UPDATE privacy_ledger SET epsilon = 0.001")
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE privacy_ledger DISABLE TRIGGER privacy_ledger_no_change")
        cur.execute("UPDATE privacy_ledger SET epsilon = 0.001 WHERE id = (SELECT min(id) FROM privacy_ledger) RETURNING id")
        (changed,) = cur.fetchall()[0]
        cur.execute("ALTER TABLE privacy_ledger ENABLE TRIGGER privacy_ledger_no_change")
    verified = run_command("gdpr.verify_audit")
    assert verified.returncode == 1
    assert f"privacy ledger BROKEN at row {changed}" in verified.stdout


def test_the_dpo_sets_and_shows_budgets(settings: Settings) -> None:
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute("INSERT INTO dpo_accounts (username, password_hash) VALUES ('dee', 'x')")
    done = run_command("gdpr.dpo", "--dpo", "dee", "budget", "set", "--analyst", "ana", "--epsilon", "2")
    assert done.returncode == 0, done.stderr
    shown = run_command("gdpr.dpo", "--dpo", "dee", "budget", "show")
    assert "ana" in shown.stdout and "2" in shown.stdout
    bad = run_command("gdpr.dpo", "--dpo", "dee", "budget", "set", "--analyst", "ana", "--epsilon", "-1")
    assert bad.returncode == 2 and "is not an epsilon" in bad.stderr


def test_release_bounds_default_to_the_settings() -> None:
    assert ReleaseSettings().max_days >= 1
