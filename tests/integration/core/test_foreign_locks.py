"""No login may stall another component (issue 26): the coordination locks (sql/030) are tables
only the components granted them can lock, so a foreign login (the dashboard's, say) holding every
advisory key the platform ever used, and trying every lock it can, stalls nobody and fools no
scheduler liveness check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from core import db, locks
from core.config import Settings
from scheduler import runs
from tests.helpers import query, wait_until

pytestmark = pytest.mark.integration

# Logins with no business in coordination: they may read, and try whatever PUBLIC may.
FOREIGN = (db.DASHBOARD_ROLE, db.ANALYTICS_ROLE, db.MONITOR_ROLE, db.COLLECTOR_ROLE, db.AUDITOR_ROLE, db.SCHEDULER_ROLE)
LOCK_TABLES = ("erasure", "audit_chain", "event_partitions", "person_days_build", "user_seed", "addresses")
# Every advisory key the platform used before sql/030: the migrator's, the seeder's, the erasure's,
# the audit chain's, person_days' build, the scheduler's first runs' (class 715022) and the
# privacy API's address class (715005) with a spread of keys.
OLD_KEYS = [(715_001,), (715_002,), (715_003,), (715_004,), (715_027,)]
OLD_PAIRS = [(715_022, n) for n in range(1, 200)] + [(715_005, n) for n in range(-100, 100)]


@contextmanager
def connected(settings: Settings, role: str | None, name: str = "test-foreign") -> Iterator[psycopg2.extensions.connection]:
    with db.connection(settings.database, application_name=name, role=role) as conn:
        yield conn


@contextmanager
def foreign_holder(settings: Settings) -> Iterator[None]:
    """login_dashboard holding every old advisory key, session-level and in an open transaction."""
    with connected(settings, db.DASHBOARD_ROLE, "test-foreign-holder") as conn, conn.cursor() as cur:
        for (key,) in OLD_KEYS:
            cur.execute("SELECT pg_advisory_lock(%s)", (key,))
        cur.execute("SELECT pg_advisory_lock(hashtext('events_raw_create_partitions'))")
        for first, second in OLD_PAIRS:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (first, second))
        yield


@pytest.mark.parametrize("role", FOREIGN)
def test_a_foreign_login_can_take_no_coordination_lock(settings: Settings, role: str) -> None:
    attempts = [f"LOCK TABLE platform_lock_{name} IN {mode} MODE" for name in LOCK_TABLES for mode in ("SHARE", "EXCLUSIVE")]
    attempts += [f"SELECT platform_lock('{name}', {exclusive}, 100)" for name in LOCK_TABLES for exclusive in ("true", "false")]
    attempts += ["SELECT FROM platform_lock_addresses FOR SHARE", "SELECT privacy_api_lock_address('x')"]
    with connected(settings, role) as conn:
        for statement in attempts:
            with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
            conn.rollback()


def test_a_component_may_take_only_its_own_locks_in_its_own_mode(settings: Settings) -> None:
    with connected(settings, db.INGEST_ROLE) as conn:
        with conn.cursor() as cur:
            locks.take(cur, locks.ERASURE)  # shared: as each raw batch does
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            locks.take(cur, locks.ERASURE, exclusive=True)  # only an erasure re-keys
        conn.rollback()


def test_nothing_waits_for_a_foreign_login_holding_every_old_advisory_key(settings: Settings) -> None:
    """Each wait that an advisory key used to decide: the raw batch's and the erasure's, the audit
    chain's, the partitions', the address's, the build's, the seed's and the migrator's."""
    with foreign_holder(settings):
        with connected(settings, db.INGEST_ROLE) as conn, conn, conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = '3s'")
            locks.take(cur, locks.ERASURE, wait_ms=1000)
            today = datetime.now(UTC).date()
            cur.execute("SELECT events_raw_create_partitions(%s, %s)", (today, today))
        with connected(settings, db.GDPR_ROLE) as conn, conn, conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = '3s'")
            locks.take(cur, locks.ERASURE, exclusive=True, wait_ms=1000)
            cur.execute("INSERT INTO privacy_audit_log (request_id, action, actor) VALUES (1, 'received', 'gdpr_processor')")
        with connected(settings, db.PRIVACY_API_ROLE) as conn, conn, conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = '3s'")
            for n in range(50):
                cur.execute("SELECT privacy_api_lock_address(%s)", (f"proof-{n}",))
            cur.execute("INSERT INTO privacy_audit_log (request_id, action, actor) VALUES (1, 'received', 'privacy_api')")
        with locks.held(settings.database, locks.PERSON_DAYS_BUILD, role=db.GDPR_ROLE, application_name="test", wait_ms=1000):
            pass
        with locks.held(settings.database, locks.USER_SEED, role=None, application_name="test", wait_ms=1000):
            pass
        assert db.migrate(settings.database) == []


def test_a_foreign_login_holding_a_run_key_neither_stalls_a_claim_nor_keeps_a_dead_run_alive(settings: Settings) -> None:
    due = datetime(2030, 1, 1, tzinfo=UTC)
    with foreign_holder(settings):
        claimer = db.connect(settings.database, application_name="test-claimer", role=db.SCHEDULER_ROLE)
        with claimer.cursor() as cur:
            cur.execute("SET statement_timeout = '3s'")
        claim = runs.claim(claimer, "foreign-lock-test", due)
        assert not claim.skipped
        with runs.connection(settings.database, "test-status") as conn, conn, conn.cursor() as cur:
            [alive] = [r for r in runs.latest_runs(cur, 5) if r.id == claim.run_id]
            assert alive.held  # its own connection is open
        claimer.close()  # the run's process dies without recording an outcome

        def abandoned() -> bool:
            with runs.connection(settings.database, "test-status") as conn, conn, conn.cursor() as cur:
                return runs.mark_abandoned(cur, "foreign-lock-test") == 1

        # The foreign key holder fools nobody: marked failed once its backend has gone.
        wait_until(abandoned, timeout=10, what="the dead run to be marked failed")
    [(outcome, error)] = query(settings, "SELECT outcome, error FROM scheduler_runs WHERE id = %s", (claim.run_id,))
    assert (outcome, error) == ("failed", runs.INTERRUPTED)


HOSTILE_NAMES = ["erasure'; DROP TABLE events_raw; --", "../erasure", "ERASURE", "", "x" * 10_000, "erasure\x01"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_granted_login_cannot_lock_anything_but_a_lock_by_name(settings: Settings, name: str) -> None:
    """The name is a value looked up in the grants, never an identifier built from input: an
    injection, another spelling or a huge name is simply not granted."""
    with connected(settings, db.INGEST_ROLE) as conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("SELECT platform_lock(%s, false, 100)", (name,))
    assert query(settings, "SELECT to_regclass('events_raw') IS NOT NULL") == [(True,)]


@pytest.mark.parametrize("wait_ms", [0, -1, None])
def test_every_lock_wait_must_be_bounded(settings: Settings, wait_ms: int | None) -> None:
    with connected(settings, db.INGEST_ROLE) as conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.InvalidParameterValue):
        cur.execute("SELECT platform_lock('erasure', false, %s)", (wait_ms,))
