"""One login per component (sql/015), checked on the real server: each login is a member of its own
group role and of nothing else, so neither RESET ROLE nor SET ROLE gives it more; only the GDPR
processor's login reads personal data; nobody, the migration owner included, may update, delete
or truncate the audit trail; passwords come from configuration and are checked."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
from psycopg2 import sql

from core import db
from core.config import DEFAULTS, LOGIN_PASSWORD_VARIABLES, Settings, read_env_file
from core.errors import ConfigError
from devstack.stack import LOGINS_FILE
from tests import stacks
from tests.helpers import query

pytestmark = pytest.mark.integration

GROUPS = sorted(db.LOGINS)
PERSONAL_COLUMNS = ("email", "full_name", "address")
REWRITES = ("UPDATE privacy_audit_log SET actor = 'forged'", "DELETE FROM privacy_audit_log", "TRUNCATE privacy_audit_log")


@contextmanager
def login(settings: Settings, role: str) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor on a connection as ``role``'s login, as the component connects."""
    with db.connection(settings.database, application_name="test_logins", role=role) as conn, conn.cursor() as cur:
        yield cur


def owner(settings: Settings) -> tuple[str, bool]:
    """The migration owner's name, and whether it is a superuser (compose's de_user is)."""
    [(name, superuser)] = query(settings, "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user")
    return name, superuser


def test_the_analytics_login_cannot_reset_or_switch_its_way_to_personal_data(settings: Settings) -> None:
    with login(settings, db.ANALYTICS_ROLE) as cur:
        cur.execute("SELECT current_user, session_user")
        assert cur.fetchone() == ("login_reports", "login_reports")
        cur.execute("RESET ROLE")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="users_pii"):
            cur.execute("SELECT * FROM users_pii")
        cur.connection.rollback()
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="gdpr_processor"):
            cur.execute("SET ROLE gdpr_processor")
        cur.connection.rollback()
        # What it is for still works.
        cur.execute("SELECT count(*) FROM events_raw JOIN users_public USING (user_id)")


# The groups a component's group is itself a member of, by design: the two that release figures
# (the reports and the analysts' API) reserve budgets and write the privacy ledger (sql/043, 048).
SHARED_GROUPS = {db.ANALYTICS_ROLE: ["privacy_releaser"], db.ANALYSTS_API_ROLE: ["privacy_releaser"]}


@pytest.mark.parametrize("role", GROUPS)
def test_a_login_is_a_member_of_its_own_group_and_of_nothing_else(settings: Settings, role: str) -> None:
    name = db.LOGINS[role]
    # pg_has_role(..., 'MEMBER') follows memberships through every level, predefined roles too.
    member_of = query(
        settings,
        "SELECT rolname FROM pg_roles WHERE pg_has_role(%s, oid, 'MEMBER') AND rolname <> %s ORDER BY rolname",
        (name, name),
    )
    assert member_of == [(group,) for group in sorted([role, *SHARED_GROUPS.get(role, [])])]
    assert query(
        settings,
        "SELECT rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
        " FROM pg_roles WHERE rolname = %s",
        (name,),
    ) == [(True, True, False, False, False, False, False)]


@pytest.mark.parametrize("role", GROUPS)
def test_no_login_can_set_role_to_another_group_or_the_owner(settings: Settings, role: str) -> None:
    others = [*(g for g in GROUPS if g != role), owner(settings)[0]]
    with login(settings, role) as cur:
        for other in others:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="permission denied to set role"):
                cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(other)))
            cur.connection.rollback()
        cur.execute("SELECT current_user")
        assert cur.fetchone() == (db.LOGINS[role],)


@pytest.mark.parametrize("role", GROUPS)
def test_only_the_gdpr_processors_login_reads_users_pii(settings: Settings, role: str) -> None:
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (gen_random_uuid(), 'p@example.org', 'P', 'R 1')",
    )
    name = db.LOGINS[role]
    readable = {
        column
        for (column,) in query(
            settings,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users_pii'"
            " AND has_column_privilege(%s, 'users_pii', column_name, 'SELECT')",
            (name,),
        )
    }
    with login(settings, role) as cur:
        if role == db.GDPR_ROLE:
            cur.execute("SELECT email, full_name, address FROM users_pii")
            assert cur.fetchall() == [("p@example.org", "P", "R 1")]
            assert readable >= set(PERSONAL_COLUMNS)
            return
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT * FROM users_pii")
        cur.connection.rollback()
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT email FROM users_pii")
    # At most whether an id was erased (the consumers and the audit report), never who.
    assert readable <= {"user_id", "anonymized_at"}


@pytest.mark.parametrize("role", [None, *GROUPS], ids=["owner", *GROUPS])
def test_nobody_updates_deletes_or_truncates_the_audit_trail(settings: Settings, role: str | None) -> None:
    query(settings, "INSERT INTO privacy_requests (email) VALUES ('someone@example.invalid')")  # a 'received' row
    before = query(settings, "SELECT id, row_hash FROM privacy_audit_log ORDER BY id")
    assert len(before) == 1
    with db.connection(settings.database, application_name="test_logins", role=role) as conn, conn.cursor() as cur:
        for statement in REWRITES:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
            conn.rollback()
    assert query(settings, "SELECT id, row_hash FROM privacy_audit_log ORDER BY id") == before


def test_no_login_and_no_owner_holds_a_privilege_to_rewrite_the_audit_trail(settings: Settings) -> None:
    """The refusals above come from the privileges, not the triggers alone (a superuser, as
    compose's owner is, bypasses privileges: the triggers still refuse it)."""
    name, superuser = owner(settings)
    holders = [*db.LOGINS.values(), *GROUPS, *([] if superuser else [name])]
    granted = query(
        settings,
        "SELECT r, p FROM unnest(%s::text[]) AS r, unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS p"
        " WHERE has_table_privilege(r, 'privacy_audit_log', p)",
        (holders,),
    )
    assert granted == []


def test_a_wrong_password_is_one_line_naming_the_login_and_its_variable(settings: Settings) -> None:
    wrong = settings.database.with_passwords({"DB_PASSWORD_REPORTS": "not-it-4711"})
    try:
        conn = db.connect(wrong, role=db.ANALYTICS_ROLE)
    except ConfigError as e:
        message = str(e)
    else:
        conn.close()
        if stacks.chosen() == "existing":
            pytest.skip("this server does not check passwords of host connections (trust)")
        pytest.fail("a wrong password was accepted")
    assert "'login_reports'" in message and "DB_PASSWORD_REPORTS" in message and "python -m core.db" in message
    assert "not-it-4711" not in message and "\n" not in message


def test_a_login_without_a_configured_password_is_named_before_connecting(settings: Settings) -> None:
    none = settings.database.with_passwords(dict.fromkeys(LOGIN_PASSWORD_VARIABLES.values(), ""))
    with pytest.raises(ConfigError, match="login 'login_batch': set DB_PASSWORD_BATCH"):
        db.connect(none, role=db.BATCH_ROLE)


def test_the_migrator_sets_each_logins_password_from_configuration(settings: Settings) -> None:
    rotated = settings.database.with_passwords({"DB_PASSWORD_AUDITOR": f"rotated-{uuid.uuid4().hex}"})
    try:
        db.migrate(rotated)
        with login(settings.model_copy(update={"database": rotated}), db.AUDITOR_ROLE) as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone() == ("login_auditor",)
        if stacks.chosen() != "existing":
            with pytest.raises(ConfigError, match="login_auditor"):
                db.connect(settings.database, role=db.AUDITOR_ROLE)  # the old password no longer works
    finally:
        db.migrate(settings.database)
    with login(settings, db.AUDITOR_ROLE) as cur:
        cur.execute("SELECT 1")


def test_the_embedded_stack_gives_every_login_a_random_password_kept_private(settings: Settings) -> None:
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("only for the embedded stack")
    recorded = read_env_file(Path(data_dir) / "stack.env")
    passwords = [recorded[variable] for variable in LOGIN_PASSWORD_VARIABLES.values()]
    assert len(set(passwords)) == len(passwords)
    assert not set(passwords) & {DEFAULTS[variable] for variable in LOGIN_PASSWORD_VARIABLES.values()}
    assert settings.database.login_passwords == {name: recorded[v] for name, v in LOGIN_PASSWORD_VARIABLES.items()}
    for private in (Path(data_dir) / "stack.env", Path(data_dir) / LOGINS_FILE):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private


RETENTION_REFUSED = (
    "SELECT user_id FROM events_raw",
    "SELECT metadata FROM events_raw",
    "SELECT payload FROM dead_letter_events",
    "SELECT email FROM privacy_requests",
    "SELECT email_hmac, outcome FROM privacy_requests",
    "SELECT * FROM users_pii",
    "DELETE FROM metrics_batch_daily",
    "DELETE FROM metrics_streaming_daily",
    "UPDATE privacy_requests SET status = 'completed'",
    "UPDATE privacy_requests SET email_hmac = NULL",
    "DELETE FROM privacy_requests",
    "TRUNCATE events_raw",
    "DROP TABLE events_raw",
    "UPDATE retention_runs SET removed = 0",
    "DELETE FROM retention_runs",
)


def test_the_retention_login_removes_old_data_by_its_day_and_reads_none_of_it(settings: Settings) -> None:
    """sql/018: events and dead letters go by their day, a processed request's residue is cleared;
    no user id, metadata, payload, email or proof is readable, the metrics and a request's status
    and proof cannot be touched, and nothing is dropped but through the owner's function."""
    with login(settings, db.RETENTION_ROLE) as cur:
        cur.execute("DELETE FROM events_raw WHERE event_date < '2000-01-01'")
        cur.execute("DELETE FROM dead_letter_events WHERE received_at < '2000-01-01'")
        cur.execute(
            "UPDATE privacy_requests SET email = NULL, outcome = NULL, secret_hash = NULL, residue_removed_at = now()"
            " WHERE processed_at < '2000-01-01' AND residue_removed_at IS NULL"
        )
        cur.execute(
            "INSERT INTO retention_runs (started_at, kind, cutoff, removed, dry_run)"
            " VALUES (now(), 'reports', current_date, 0, true)"
        )
        cur.connection.commit()
        for statement in RETENTION_REFUSED:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
            cur.connection.rollback()


def test_only_the_retention_login_may_drop_event_partitions_and_only_old_ones_of_events_raw(settings: Settings) -> None:
    function = "retention_drop_event_partitions(regclass, date, boolean, integer)"
    allowed = query(
        settings,
        "SELECT r FROM unnest(%s::text[]) AS r WHERE has_function_privilege(r, %s, 'EXECUTE')",
        (sorted(db.LOGINS.values()), function),
    )
    assert allowed == [("login_retention",)]
    with login(settings, db.RETENTION_ROLE) as cur:
        with pytest.raises(psycopg2.errors.WrongObjectType, match="is not an events_raw table partitioned by range"):
            cur.execute("SELECT * FROM retention_drop_event_partitions('metrics_batch_daily', current_date, true)")
        cur.connection.rollback()
        # events_raw itself is (sql/021): nothing of it is before 2000.
        cur.execute("SELECT * FROM retention_drop_event_partitions('events_raw', '2000-01-01', true)")
        assert cur.fetchall() == []
        cur.connection.rollback()
        with pytest.raises(psycopg2.errors.InvalidParameterValue, match="is after today"):
            cur.execute("SELECT * FROM retention_drop_event_partitions('events_raw', current_date + 1, false)")
        cur.connection.rollback()
    with login(settings, db.BATCH_ROLE) as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("SELECT * FROM retention_drop_event_partitions('events_raw', '2000-01-01', true)")


SCHEDULER_REFUSED = (
    "SELECT email FROM privacy_requests",
    "SELECT email_hmac FROM privacy_requests",
    "SELECT request_type FROM privacy_requests",
    "SELECT * FROM users_pii",
    "SELECT user_id FROM events_raw",
    "SELECT * FROM metrics_batch_daily",
    "UPDATE privacy_requests SET status = 'completed'",
    "UPDATE scheduler_runs SET job = 'forged'",
    "UPDATE scheduler_runs SET scheduled_for = now()",
    "DELETE FROM scheduler_runs",
    "TRUNCATE scheduler_runs",
)


def test_the_scheduler_login_records_its_runs_and_reads_only_request_deadlines(settings: Settings) -> None:
    """sql/022: its own runs (claimed, finished; never deleted or re-dated) and, of the requests,
    the id, status and due date for the deadline check; no personal data, nothing of the pipeline."""
    query(settings, "INSERT INTO privacy_requests (email) VALUES ('someone@example.invalid')")
    with login(settings, db.SCHEDULER_ROLE) as cur:
        cur.execute("SELECT count(*) FROM privacy_requests WHERE status = 'pending' AND due_at > now()")
        assert cur.fetchone() == (1,)
        cur.execute("INSERT INTO scheduler_runs (job, scheduled_for, outcome) VALUES ('batch', now(), 'running') RETURNING id")
        (run_id,) = cur.fetchone() or (None,)
        cur.execute("UPDATE scheduler_runs SET outcome = 'ok', finished_at = now(), detail = 'fine' WHERE id = %s", (run_id,))
        cur.connection.commit()
        for statement in SCHEDULER_REFUSED:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
            cur.connection.rollback()


DASHBOARD_REFUSED = (
    "SELECT email FROM privacy_requests",
    "SELECT email_hmac FROM privacy_requests",
    "SELECT outcome FROM privacy_requests",
    "SELECT * FROM privacy_requests",
    "SELECT * FROM users_pii",
    "SELECT * FROM users_public",
    "SELECT * FROM events_raw",
    "SELECT payload FROM dead_letter_events",
    "SELECT consumer_group FROM dead_letter_events",
    "SELECT error FROM scheduler_runs",
    "SELECT detail FROM scheduler_runs",
    "SELECT * FROM privacy_audit_log",
    "SELECT * FROM consent_ledger",
    "SELECT * FROM metrics_batch_daily",
    "UPDATE metrics_streaming_daily SET total_events = 0",
    "DELETE FROM consumer_offsets",
    "INSERT INTO consumer_batches (consumer_group, topic, events, dead_letters) VALUES ('g', 't', 1, 0)",
    "UPDATE privacy_requests SET status = 'completed'",
)


def test_the_dashboard_login_reads_counts_and_progress_and_no_personal_data(settings: Settings) -> None:
    """sql/024: what the page shows (progress, today's metrics, a request's type, status and due date,
    a run's job, due time, end and outcome, a dead letter's reason and time) and nothing else: no
    email, proof, outcome or error line, no event, no payload; and it writes nothing."""
    query(settings, "INSERT INTO privacy_requests (email) VALUES ('someone@example.invalid')")
    with login(settings, db.DASHBOARD_ROLE) as cur:
        cur.execute("SELECT count(id), min(request_type), min(status) FROM privacy_requests WHERE due_at > now()")
        assert cur.fetchone() == (1, "erasure", "pending")
        cur.execute("SELECT job, scheduled_for, finished_at, outcome FROM scheduler_runs")
        cur.execute("SELECT reason, received_at FROM dead_letter_events")
        cur.execute("SELECT event_date, event_type, total_events, total_amount FROM metrics_streaming_daily")
        cur.execute("SELECT * FROM consumer_offsets, consumer_batches, consumer_instances")
        cur.connection.commit()
        for statement in DASHBOARD_REFUSED:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
            cur.connection.rollback()
