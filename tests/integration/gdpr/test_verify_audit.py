"""The audit trail is tamper-evident: ``python -m gdpr.verify_audit`` finds a row changed, removed
or inserted by the database's owner, and concurrent writers still make one whole chain."""

from __future__ import annotations

import subprocess
import sys
import threading

import psycopg2.errors
import pytest

from core import db
from core.config import Settings
from tests.helpers import query, run_command

pytestmark = pytest.mark.integration


def _file_and_process(settings: Settings) -> None:
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address)"
        " VALUES (gen_random_uuid(), 'eve@example.org', 'Eve', 'Road 1')",
    )
    query(
        settings,
        "INSERT INTO privacy_requests (email, request_type)"
        " VALUES ('eve@example.org', 'access'), ('nobody@example.org', 'erasure'), ('eve@example.org', 'erasure')",
    )
    processed = run_command("gdpr.process_privacy_requests")
    assert processed.returncode == 0, processed.stderr


def _as_owner(settings: Settings, statement: str, params: tuple[object, ...]) -> None:
    """What only the table's owner can do: grant itself back UPDATE and DELETE (sql/015 revoked
    them) and lift the append-only trigger, for one statement."""
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute("GRANT UPDATE, DELETE ON privacy_audit_log TO CURRENT_USER")
        cur.execute("ALTER TABLE privacy_audit_log DISABLE TRIGGER privacy_audit_log_no_change")
        cur.execute(statement, params)
        cur.execute("ALTER TABLE privacy_audit_log ENABLE TRIGGER privacy_audit_log_no_change")
        cur.execute("REVOKE UPDATE, DELETE ON privacy_audit_log FROM CURRENT_USER")


def test_a_whole_chain_verifies_and_names_its_last_hash(settings: Settings) -> None:
    _file_and_process(settings)
    [(rows, head)] = query(settings, "SELECT count(*), (array_agg(row_hash ORDER BY id DESC))[1] FROM privacy_audit_log")
    assert rows >= 6

    result = run_command("gdpr.verify_audit", "--expect-head", head)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"audit trail whole: {rows:,} rows; last hash {head}" in result.stdout


def test_a_changed_row_is_named(settings: Settings) -> None:
    _file_and_process(settings)
    [(middle,)] = query(settings, "SELECT (array_agg(id ORDER BY id))[3] FROM privacy_audit_log")
    _as_owner(settings, "UPDATE privacy_audit_log SET details = '{\"events\": 0}'::jsonb WHERE id = %s", (middle,))

    result = run_command("gdpr.verify_audit")

    assert result.returncode == 1
    assert f"BROKEN at row {middle}: its contents do not match its hash" in result.stdout


def test_a_removed_row_breaks_the_link_of_the_next_and_a_removed_tail_the_expected_head(settings: Settings) -> None:
    _file_and_process(settings)
    ids = [row[0] for row in query(settings, "SELECT id FROM privacy_audit_log ORDER BY id")]
    [(head,)] = query(settings, "SELECT row_hash FROM privacy_audit_log WHERE id = %s", (ids[-1],))
    _as_owner(settings, "DELETE FROM privacy_audit_log WHERE id = %s", (ids[-1],))
    assert run_command("gdpr.verify_audit").returncode == 0  # a shorter chain is still whole...
    tail = run_command("gdpr.verify_audit", "--expect-head", head)
    assert tail.returncode == 1 and "no row has the hash" in tail.stdout  # ...but not the one recorded

    _as_owner(settings, "DELETE FROM privacy_audit_log WHERE id = %s", (ids[1],))
    result = run_command("gdpr.verify_audit")
    assert result.returncode == 1
    assert f"BROKEN at row {ids[2]}: its link to the row before it is wrong" in result.stdout


def test_concurrent_writers_make_one_chain_in_id_order(settings: Settings) -> None:
    insert = "INSERT INTO privacy_audit_log (request_id, action, actor) VALUES (%s, 'received', 'test')"
    with db.connection(settings.database) as first:
        first_cur = first.cursor()
        first_cur.execute(insert, (1,))  # holds the chain until it commits
        done = threading.Event()

        def second_writer() -> None:
            with db.connection(settings.database) as second, second, second.cursor() as cur:
                cur.execute(insert, (2,))
            done.set()

        writer = threading.Thread(target=second_writer)
        writer.start()
        assert not done.wait(0.5)  # it waits for the first transaction
        first_cur.execute(insert, (3,))
        first.commit()
        writer.join(timeout=30)
    assert done.is_set()
    assert [r[0] for r in query(settings, "SELECT request_id FROM privacy_audit_log ORDER BY id")] == [1, 3, 2]
    result = run_command("gdpr.verify_audit")
    assert result.returncode == 0, result.stdout + result.stderr


def _insert_as(settings: Settings, role: str, statement: str, params: tuple[object, ...] = ()) -> None:
    with db.connection(settings.database, application_name="test-forger", role=role) as conn, conn, conn.cursor() as cur:
        cur.execute(statement, params)


def _write_entry(settings: Settings, role: str, actor: str) -> None:
    _insert_as(settings, role, "INSERT INTO privacy_audit_log (request_id, action, actor) VALUES (1, 'completed', %s)", (actor,))


@pytest.mark.parametrize(
    ("role", "actor"),
    [
        (db.PRIVACY_API_ROLE, "dpo:dora"),
        (db.PRIVACY_API_ROLE, "gdpr_processor"),
        (db.GDPR_ROLE, "privacy_api"),
        (db.RETENTION_ROLE, "gdpr_processor"),
        (db.CONSOLE_ROLE, "dpo:ghost"),  # no such account
        (db.CONSOLE_ROLE, "gdpr_processor"),
    ],
)
def test_a_login_cannot_write_an_audit_entry_as_another_actor(settings: Settings, role: str, actor: str) -> None:
    with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="may not write audit entries"):
        _write_entry(settings, role, actor)
    assert query(settings, "SELECT count(*) FROM privacy_audit_log WHERE actor = %s", (actor,)) == [(0,)]


def test_each_login_writes_as_itself_and_the_console_as_an_enabled_dpo(settings: Settings) -> None:
    query(settings, "INSERT INTO dpo_accounts (username, password_hash) VALUES ('dora', 'x'), ('gone', 'x')")
    query(settings, "UPDATE dpo_accounts SET disabled_at = now() WHERE username = 'gone'")
    for role, actor in [
        (db.PRIVACY_API_ROLE, "privacy_api"),
        (db.GDPR_ROLE, "gdpr_processor"),
        (db.RETENTION_ROLE, "retention"),
        (db.CONSOLE_ROLE, "dpo:dora"),
    ]:
        _write_entry(settings, role, actor)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        _insert_as(
            settings,
            db.CONSOLE_ROLE,
            "INSERT INTO privacy_audit_log (request_id, action, actor) VALUES (1, 'denied', 'dpo:gone')",
        )


def test_the_console_login_cannot_create_a_dpo_account(settings: Settings) -> None:
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        _insert_as(settings, db.CONSOLE_ROLE, "INSERT INTO dpo_accounts (username, password_hash) VALUES ('mallory', 'x')")
    created = subprocess.run(
        [sys.executable, "-m", "console.accounts", "create", "carol", "--password-stdin"],
        input="a long enough password\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    assert query(settings, "SELECT username FROM dpo_accounts") == [("carol",)]


def test_a_chain_recomputed_by_the_owner_fails_its_seal(settings: Settings) -> None:
    """The owner rewrites a row's actor with the triggers off and recomputes every hash after it:
    the chain is whole again, but the seal the last check made no longer holds."""
    _file_and_process(settings)
    sealed = run_command("gdpr.verify_audit")
    assert sealed.returncode == 0 and "head sealed" in sealed.stdout, sealed.stdout + sealed.stderr
    [(middle,)] = query(settings, "SELECT (array_agg(id ORDER BY id))[2] FROM privacy_audit_log")
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute("GRANT UPDATE ON privacy_audit_log TO CURRENT_USER")
        cur.execute("ALTER TABLE privacy_audit_log DISABLE TRIGGER USER")
        cur.execute("UPDATE privacy_audit_log SET actor = 'dpo:dora' WHERE id = %s", (middle,))
        cur.execute(
            "DO $$ DECLARE r RECORD; last TEXT := ''; BEGIN"
            " FOR r IN SELECT * FROM privacy_audit_log ORDER BY id LOOP"
            "  UPDATE privacy_audit_log SET prev_hash = last,"
            "   row_hash = privacy_audit_row_hash(last, r.id, r.request_id, r.action, r.actor, r.details, r.at)"
            "  WHERE id = r.id RETURNING row_hash INTO last;"
            " END LOOP; END $$"
        )
        cur.execute("ALTER TABLE privacy_audit_log ENABLE TRIGGER USER")
        cur.execute("REVOKE UPDATE ON privacy_audit_log FROM CURRENT_USER")

    result = run_command("gdpr.verify_audit")

    assert result.returncode == 1, result.stdout
    assert "no longer has the hash seal" in result.stdout and "recomputed" in result.stdout


def test_a_seal_made_without_the_key_is_named_forged(settings: Settings) -> None:
    _file_and_process(settings)
    [(last, head)] = query(settings, "SELECT id, row_hash FROM privacy_audit_log ORDER BY id DESC LIMIT 1")
    with db.connection(settings.database, role=db.AUDITOR_ROLE) as conn, conn, conn.cursor() as cur:
        cur.execute("INSERT INTO privacy_audit_seals (audit_id, row_hash, mac) VALUES (%s, %s, %s)", (last, head, "0" * 64))

    result = run_command("gdpr.verify_audit")

    assert result.returncode == 1 and "was not made with AUDIT_SEAL_KEY" in result.stdout
