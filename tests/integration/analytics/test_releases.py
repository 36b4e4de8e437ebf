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
from gdpr import verify_audit
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


def test_a_release_of_a_shape_already_planned_declares_the_same_and_is_charged_again(settings: Settings) -> None:
    """The second release reuses the planned measurement (analytics.dp's cache): same declaration
    and epsilon, a ledger row of its own, and the budget drawn down each time."""
    seed(settings, {"DE": 5})
    set_budgets(settings, "ana", 2.5)
    release_dp.clear_plans()
    first = release(settings, "ana", 1.0)
    second = release(settings, "ana", 1.0)
    assert len(release_dp._plans) == 1, "the second release was not planned again"
    assert second.declaration == first.declaration and second.epsilon == first.epsilon
    assert first.budget_left == pytest.approx(1.5) and second.budget_left == pytest.approx(0.5)
    assert query(settings, "SELECT count(*), sum(epsilon) FROM privacy_ledger") == [(2, pytest.approx(2.0))]
    with pytest.raises(ledger.BudgetExhausted):
        release(settings, "ana", 1.0)


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
        cur.execute("INSERT INTO analyst_accounts (name, role, token_hash) VALUES ('ana', 'analyst', repeat('a', 64))")
    done = run_command("gdpr.dpo", "--dpo", "dee", "budget", "set", "--analyst", "ana", "--epsilon", "2")
    assert done.returncode == 0, done.stderr
    shown = run_command("gdpr.dpo", "--dpo", "dee", "budget", "show")
    assert "ana" in shown.stdout and "2" in shown.stdout
    bad = run_command("gdpr.dpo", "--dpo", "dee", "budget", "set", "--analyst", "ana", "--epsilon", "-1")
    assert bad.returncode == 2 and "is not an epsilon" in bad.stderr
    unknown = run_command("gdpr.dpo", "--dpo", "dee", "budget", "set", "--analyst", "nobody", "--epsilon", "1")
    assert unknown.returncode == 2 and "there is no analyst 'nobody'" in unknown.stderr
    audited = query(settings, "SELECT request_id, action, actor, details->>'analyst' FROM privacy_audit_log")
    assert audited == [(0, "budget_set", "dpo:dee", "ana")]


def test_release_bounds_default_to_the_settings() -> None:
    assert ReleaseSettings().max_days >= 1


def ledger_of_three(settings: Settings) -> list[tuple[int, str]]:
    """Three ledger rows, written as a release writes them; their ids and hashes."""
    with as_releaser(settings) as conn, conn, conn.cursor() as cur:
        for epsilon in (0.5, 0.25, 0.125):
            ledger.record(cur, "ana", "daily_kpis", mechanism="integer laplace", epsilon=epsilon, details={"days": 1})
    return [(int(i), str(h)) for i, h in query(settings, "SELECT id, row_hash FROM privacy_ledger ORDER BY id")]


def owner_rewrites_the_ledger(settings: Settings, statement: str) -> None:
    """``statement`` run by the owner with the ledger's triggers off, then every hash recomputed:
    a chain that is whole again, as only its owner could make it."""
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE privacy_ledger DISABLE TRIGGER USER")
        cur.execute(statement)
        cur.execute(
            "DO $$ DECLARE r RECORD; last TEXT := ''; BEGIN"
            " FOR r IN SELECT * FROM privacy_ledger ORDER BY id LOOP"
            "  UPDATE privacy_ledger SET prev_hash = last,"
            "   row_hash = privacy_ledger_row_hash(last, r.id, r.analyst, r.query, r.mechanism, r.epsilon, r.details, r.at)"
            "  WHERE id = r.id RETURNING row_hash INTO last;"
            " END LOOP; END $$"
        )
        cur.execute("ALTER TABLE privacy_ledger ENABLE TRIGGER USER")


def test_the_ledgers_head_is_sealed_with_the_audit_trails_key_and_checked_later(settings: Settings) -> None:
    rows = ledger_of_three(settings)
    first = run_command("gdpr.verify_audit")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "privacy ledger whole: 3 rows" in first.stdout and "0 earlier seals hold; head sealed" in first.stdout
    head_id, head_hash = rows[-1]
    [(mac,)] = query(settings, "SELECT mac FROM privacy_ledger_seals WHERE ledger_id = %s AND row_hash = %s", rows[-1])
    assert mac == verify_audit.seal_mac(settings.audit_seal_key, head_id, head_hash)
    again = run_command("gdpr.verify_audit")
    assert again.returncode == 0 and "1 earlier seals hold; head sealed" in again.stdout.split("privacy ledger")[1]
    assert query(settings, "SELECT count(*) FROM privacy_ledger_seals") == [(1,)], "the same head is sealed once"


def only_ledger_seal(settings: Settings) -> int:
    [(seal_id,)] = query(settings, "SELECT id FROM privacy_ledger_seals")
    return int(seal_id)


def test_a_ledger_head_rewritten_and_recomputed_fails_its_seal(settings: Settings) -> None:
    head_id, _ = ledger_of_three(settings)[-1]
    assert run_command("gdpr.verify_audit").returncode == 0
    seal_id = only_ledger_seal(settings)
    owner_rewrites_the_ledger(
        settings, "UPDATE privacy_ledger SET epsilon = 0.001 WHERE id = (SELECT max(id) FROM privacy_ledger)"
    )
    result = run_command("gdpr.verify_audit")
    assert result.returncode == 1, result.stdout
    assert f"privacy ledger BROKEN: row {head_id} no longer has the hash seal {seal_id} sealed" in result.stdout


def test_a_ledger_cut_short_below_its_seal_is_reported(settings: Settings) -> None:
    head_id, _ = ledger_of_three(settings)[-1]
    assert run_command("gdpr.verify_audit").returncode == 0
    seal_id = only_ledger_seal(settings)
    owner_rewrites_the_ledger(settings, "DELETE FROM privacy_ledger WHERE id = (SELECT max(id) FROM privacy_ledger)")
    result = run_command("gdpr.verify_audit")
    assert result.returncode == 1, result.stdout
    assert f"privacy ledger BROKEN: row {head_id}, sealed by seal {seal_id}, is gone" in result.stdout


def test_a_ledger_seal_made_without_the_key_is_named_forged(settings: Settings) -> None:
    head_id, head_hash = ledger_of_three(settings)[-1]
    with db.connection(settings.database, role=db.AUDITOR_ROLE) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO privacy_ledger_seals (ledger_id, row_hash, mac) VALUES (%s, %s, %s)", (head_id, head_hash, "0" * 64)
        )
    result = run_command("gdpr.verify_audit")
    forged = only_ledger_seal(settings)
    assert result.returncode == 1 and f"privacy ledger BROKEN: seal {forged} was not made with AUDIT_SEAL_KEY" in result.stdout
