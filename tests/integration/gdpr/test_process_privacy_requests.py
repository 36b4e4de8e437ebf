"""GDPR through the real commands: erasure leaves no trace, access exports, lifecycle, audit trail,
trigger-driven processing, least privilege, and PII kept out of the analytics tables."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from core import cli, db
from core.config import Settings
from core.events import Event, user_uuid
from data_generators.events import EventFactory
from data_generators.generate_users import generated_user_id
from gdpr.erasure import ERASED_PAYLOAD
from tests.helpers import (
    PROJECT_ROOT,
    consume_all,
    metrics_table,
    produce,
    produce_events,
    query,
    read_topic,
    run_command,
    wait_until,
)

pytestmark = pytest.mark.integration

TEXT_COLUMNS = """
SELECT c.table_name, c.column_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
  AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
"""


def find_anywhere(settings: Settings, needle: str) -> list[str]:
    """Every table.column whose text (or JSON text) contains ``needle``, case-insensitively."""
    hits = []
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        for table, column in query(settings, TEXT_COLUMNS):
            cur.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE strpos(lower({}::text), lower(%s)) > 0").format(
                    sql.Identifier(table), sql.Identifier(column)
                ),
                (needle,),
            )
            if cur.fetchall()[0][0]:
                hits.append(f"{table}.{column}")
    return hits


def person(settings: Settings, user_id: str) -> tuple[str, str, str]:
    [(email, name, address)] = query(settings, "SELECT email, full_name, address FROM users_pii WHERE user_id = %s", (user_id,))
    return str(email), str(name), str(address)


def assert_forgotten(settings: Settings, values: tuple[str, ...], logs: str) -> None:
    """Nothing links the person's identity to any row, file or log line."""
    for value in values:
        assert find_anywhere(settings, value) == [], value
        for path in settings.reports_dir.rglob("*"):
            if path.is_file():  # text reports and PNG charts alike, as bytes
                assert value.lower().encode() not in path.read_bytes().lower(), path
        assert value.lower() not in logs.lower()


def assert_late_events_get_fresh_ids(settings: Settings, group: str, tmp_path: Path, user_id: str, before: datetime) -> None:
    """Late events of an erased user (stamped ``before`` the erasure) get fresh random ids too,
    one each, and their metadata's strings are erased (free text that may be theirs); keys and
    numbers stay. Events stamped after the erasure are not stored at all: it withdrew consent."""
    metadata = {"page": "/p/1", "note": "call me, Erika Musterfrau", "items": [{"sku": "A-1", "qty": 2}]}
    late = [Event(str(uuid.uuid4()), user_id, "page_view", before, None, metadata) for _ in range(20)]
    after = [Event(str(uuid.uuid4()), user_id, "page_view", datetime.now(UTC), None, metadata) for _ in range(3)]
    produce_events(settings, late + after)
    consume_all(settings, group, tmp_path)
    assert query(
        settings, "SELECT count(*) FROM events_raw WHERE event_id = ANY(%s::uuid[])", ([e.event_id for e in after],)
    ) == [(0,)]
    assert query(
        settings, "SELECT sum(dropped_events) FROM consent_dropped_daily WHERE consumer_group = %s", (f"raw-{group}",)
    ) == [(3,)]
    assert query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s", (user_id,)) == [(0,)]
    # Fresh event ids and no Kafka offsets as well: nothing leads back to their messages.
    assert query(
        settings, "SELECT count(*) FROM events_raw WHERE event_id = ANY(%s::uuid[])", ([str(e.event_id) for e in late],)
    ) == [(0,)]
    [(late_ids, pseudonyms, offsets)] = query(
        settings,
        "SELECT count(DISTINCT user_id), bool_and(user_id::text LIKE 'ffffffff-%%'), count(kafka_offset) FROM events_raw"
        " WHERE metadata ? 'note'",
    )
    assert late_ids == 20 and pseudonyms and offsets == 0
    stored = query(settings, "SELECT DISTINCT metadata FROM events_raw WHERE metadata ? 'note'")
    assert stored == [({"page": "[erased]", "note": "[erased]", "items": [{"sku": "[erased]", "qty": 2}]},)]


def assert_moved_to_one_pseudonym(settings: Settings, former: str, users: list[str], events: int) -> None:
    """Nothing is linked to the former user id: the events moved to one fresh random UUID, the
    profile with them, and no text anywhere names the former id."""
    assert query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s", (former,)) == [(0,)]
    assert query(settings, "SELECT count(*) FROM users_public WHERE user_id = %s", (former,)) == [(0,)]
    [(pseudonym, moved)] = query(
        settings, "SELECT user_id, count(*) FROM events_raw WHERE user_id <> ALL(%s::uuid[]) GROUP BY user_id", (users,)
    )
    assert moved == events and uuid.UUID(str(pseudonym)).version == 4 and str(pseudonym).startswith("ffffffff-")
    assert query(settings, "SELECT is_erased FROM users_public WHERE user_id = %s", (pseudonym,)) == [(True,)]
    assert find_anywhere(settings, former) == []


def test_erasure_leaves_no_trace_and_keeps_every_aggregate(settings: Settings, group: str, tmp_path: Path) -> None:
    assert run_command("data_generators.generate_users", "--count", "50", "--seed", "3").returncode == 0
    users = [generated_user_id(3, n) for n in range(1, 51)]
    seventh = users[6]  # the person who asks to be forgotten
    email, name, address = person(settings, seventh)
    factory = EventFactory(users, seed=5)
    now = datetime.now(UTC)
    events = [factory.make(now) for _ in range(2000)]
    produce_events(settings, events)
    # A rejected message that names the person in free text: the dead-letter table must forget it too.
    produce(
        settings, [(seventh.encode(), json.dumps({"user_id": seventh, "event_type": "refund", "note": f"from {name}"}).encode())]
    )
    logs = consume_all(settings, group, tmp_path)

    # An access request first: its export holds the person's data, so erasure must delete it.
    query(settings, "INSERT INTO privacy_requests (email, request_type) VALUES (%s, 'access')", (email,))
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    [(export_path,)] = query(settings, "SELECT export_path FROM privacy_requests WHERE request_type = 'access'")
    assert name in Path(str(export_path)).read_text(encoding="utf-8")

    day = now.date().isoformat()
    assert run_command("batch.batch_metrics", day).returncode == 0
    streaming_before = metrics_table(settings, "metrics_streaming_daily")
    batch_before = metrics_table(settings, "metrics_batch_daily")
    # The k-rule's report, which is deterministic: a DP release differs on every run by design.
    k_rule = {"REPORT_RELEASE_MODE": "k"}
    report_before = run_command("reports.generate_daily_report", day, env=k_rule)
    report_file = settings.reports_dir / f"business_report_{day}.md"
    report_bytes_before = report_file.read_bytes()
    [(events_of_7,)] = query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s", (seventh,))
    assert events_of_7 > 0

    query(
        settings,
        "INSERT INTO privacy_requests (email) VALUES (%s), ('nobody@example.invalid'), ('not an email'), (NULL)",
        (f"  {email.upper()} ",),
    )
    result = run_command("gdpr.process_privacy_requests")
    assert result.returncode == 0, result.stderr
    assert "4 processed" in result.stdout
    logs += result.stdout + result.stderr

    statuses = query(settings, "SELECT status FROM privacy_requests WHERE request_type = 'erasure' ORDER BY id")
    assert statuses == [("completed",), ("not_found",), ("rejected",), ("rejected",)]
    assert query(settings, "SELECT count(*) FROM privacy_requests WHERE email IS NOT NULL") == [(0,)]
    assert query(settings, "SELECT email, full_name, address FROM users_pii WHERE user_id = %s", (seventh,)) == [
        (None, None, None)
    ]
    assert not Path(str(export_path)).exists()

    assert run_command("reports.gdpr_audit_report").returncode == 0
    assert_forgotten(settings, (email, name, address), logs)
    assert_moved_to_one_pseudonym(settings, seventh, users, events_of_7)

    # The aggregates and the business report are exactly as before.
    assert metrics_table(settings, "metrics_streaming_daily") == streaming_before
    assert run_command("batch.batch_metrics", day).returncode == 0
    assert metrics_table(settings, "metrics_batch_daily") == batch_before
    assert run_command("reports.generate_daily_report", day, env=k_rule).stdout == report_before.stdout
    assert report_file.read_bytes() == report_bytes_before

    assert_late_events_get_fresh_ids(settings, group, tmp_path, seventh, now)
    audit = run_command("reports.gdpr_audit_report").stdout
    assert "Residual-PII check: 0" in audit and "Erasures completed: **1**" in audit

    again = run_command("gdpr.process_privacy_requests")
    assert again.returncode == 0 and "none pending" in again.stdout


def test_access_request_exports_everything_held_as_json(settings: Settings, group: str, tmp_path: Path) -> None:
    assert run_command("data_generators.generate_users", "--count", "5").returncode == 0
    second, third = generated_user_id(42, 2), generated_user_id(42, 3)
    email, name, address = person(settings, second)
    factory = EventFactory([second, third], seed=1)
    produce_events(settings, [factory.make(datetime.now(UTC)) for _ in range(300)])
    consume_all(settings, group, tmp_path)
    [(held,)] = query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s", (second,))

    query(settings, "INSERT INTO privacy_requests (email, request_type) VALUES (%s, 'access')", (email.title(),))
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    [(request_id, status, path)] = query(settings, "SELECT id, status, export_path FROM privacy_requests")
    assert status == "completed"
    export = Path(str(path))
    assert export.parent == settings.reports_dir / "access"
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    document = json.loads(export.read_text(encoding="utf-8"))
    assert document["personal_data"]["email"] == email and document["personal_data"]["full_name"] == name
    assert document["personal_data"]["address"] == address
    assert document["public_profile"]["country"]
    assert len(document["events"]) == held > 0
    assert [r["request_id"] for r in document["privacy_requests"]] == [request_id]
    actions = [
        a for (a,) in query(settings, "SELECT action FROM privacy_audit_log WHERE request_id = %s ORDER BY id", (request_id,))
    ]
    assert actions == ["received", "verified", "exported", "completed"]


def test_request_lifecycle_due_date_and_append_only_audit(settings: Settings) -> None:
    query(settings, "INSERT INTO privacy_requests (email) VALUES ('someone@example.invalid')")
    [(requested, due, status)] = query(settings, "SELECT requested_at, due_at, status FROM privacy_requests")
    assert status == "pending"
    assert due.date() == (requested + timedelta(days=31)).date() or (due - requested).days in (28, 29, 30, 31)
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    assert query(settings, "SELECT status, processed_at IS NOT NULL FROM privacy_requests") == [("not_found", True)]
    for statement in ("UPDATE privacy_audit_log SET actor = 'x'", "DELETE FROM privacy_audit_log", "TRUNCATE privacy_audit_log"):
        # As the owner: refused by its privileges (sql/015), or by the trigger where it is a superuser.
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match=r"append-only|permission denied"):
            query(settings, statement)
    assert query(settings, "SELECT count(*) FROM privacy_audit_log") == [(3,)]
    entries = query(settings, "SELECT details::text FROM privacy_audit_log")
    assert not any("someone" in str(d) for (d,) in entries)


def test_malicious_requests_are_rejected_and_harm_nothing(settings: Settings) -> None:
    assert run_command("data_generators.generate_users", "--count", "20").returncode == 0
    hostile = [
        "'; DROP TABLE users_pii; --",
        "x' OR '1'='1@example.com",
        "a" * 200_000,
        "",
        "not-an-email",
        "admin@ex\u0430mple.com",
        "user\u200b@example.com",
        "\uff55ser@example.com",
        "user@example.com\u202e",
        "%@example.com",
    ]
    # The people whose addresses the look-alikes imitate.
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address) VALUES"
        " (gen_random_uuid(), 'admin@example.com', 'A', 'B'), (gen_random_uuid(), 'user@example.com', 'C', 'D')",
    )
    for value in hostile:
        query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (value,))
    result = run_command("gdpr.process_privacy_requests")
    assert result.returncode == 0, result.stderr
    rows = query(settings, "SELECT status, outcome FROM privacy_requests ORDER BY id")
    # A look-alike (Cyrillic a, full-width u) is a mailbox of its own: it matches nobody here.
    expected = ["rejected"] * 5 + ["not_found", "rejected", "not_found", "rejected", "not_found"]
    assert [status for status, _ in rows] == expected
    assert all(outcome for _status, outcome in rows)
    # Each rejected request keeps the proof of what was asked (the audit shows somebody asked),
    # never the text itself.
    proofs = query(settings, "SELECT email, email_hmac FROM privacy_requests ORDER BY id")
    assert all(email is None and proof and len(proof) == 64 for email, proof in proofs)
    assert query(settings, "SELECT count(*) FROM users_pii WHERE email IS NOT NULL") == [(22,)]
    assert "DROP" not in result.stdout + result.stderr


def test_two_processors_never_handle_a_request_twice(settings: Settings) -> None:
    assert run_command("data_generators.generate_users", "--count", "100").returncode == 0
    emails = [e for (e,) in query(settings, "SELECT email FROM users_pii ORDER BY user_id")]
    values = emails + [f"ghost{i}@example.invalid" for i in range(100)] + ["bad"] * 100
    for value in values:
        query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (value,))
    processors = [
        subprocess.Popen(
            [sys.executable, "-m", "gdpr.process_privacy_requests", "--batch-size", "5"],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processors]
    assert all(p.returncode == 0 for p in processors)
    handled = sum(int(out.split("privacy requests: ")[1].split(" processed")[0]) for out in outputs if "processed" in out)
    assert handled == len(values)
    terminal = query(
        settings,
        "SELECT request_id, count(*) FROM privacy_audit_log WHERE action IN ('completed', 'not_found', 'rejected')"
        " GROUP BY request_id HAVING count(*) <> 1",
    )
    assert terminal == []
    assert query(settings, "SELECT status, count(*) FROM privacy_requests GROUP BY status ORDER BY status") == [
        ("completed", 100),
        ("not_found", 100),
        ("rejected", 100),
    ]


@contextmanager
def watching(tmp_path: Path) -> Iterator[Path]:
    """``--watch`` running, its output in the returned log; stopped with SIGTERM, which it must
    answer with exit status 0."""
    log = tmp_path / "watch.log"
    with open(log, "w", encoding="utf-8") as handle:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "gdpr.process_privacy_requests", "--watch"],
            cwd=PROJECT_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOG_LEVEL": "INFO"},
        )
    try:
        yield log
    finally:
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=15) == 0, log.read_text()


def test_watch_processes_a_new_request_within_about_a_second(settings: Settings, tmp_path: Path) -> None:
    with watching(tmp_path) as log:
        wait_until(lambda: "watching privacy_requests" in log.read_text(), what="the watcher to listen")
        query(settings, "INSERT INTO privacy_requests (email) VALUES ('late.comer@example.invalid')")
        # The sweep runs every 30 s; finishing well before proves the notification woke it.
        wait_until(
            lambda: query(settings, "SELECT status FROM privacy_requests") == [("not_found",)], timeout=10, what="the request"
        )


def test_watch_finishes_the_vacuum_a_large_erasure_left_when_it_is_idle(settings: Settings, tmp_path: Path) -> None:
    """A partition queued for index cleanup (gdpr.vacuum.finish_vacuum) leaves
    the queue without any request or command: the idle watcher vacuums it."""
    day = cli.today_utc() - timedelta(days=2)
    query(settings, "SELECT events_raw_create_partitions(%s, %s)", (day, day))
    name = f"events_raw_{day:%Y%m%d}"
    query(settings, "INSERT INTO erasure_index_cleanup (partition_name) VALUES (%s)", (name,))
    before = query(settings, "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s", (name,))
    with watching(tmp_path) as log:
        wait_until(lambda: query(settings, "SELECT count(*) FROM erasure_index_cleanup") == [(0,)], what="the queue emptied")
        wait_until(
            lambda: query(settings, "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s", (name,)) > before,
            what=f"{name} vacuumed",
        )
        assert "watching privacy_requests" in log.read_text()


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        (db.ANALYTICS_ROLE, "SELECT * FROM users_pii"),
        (db.ANALYTICS_ROLE, "SELECT * FROM privacy_requests"),
        (db.ANALYTICS_ROLE, "INSERT INTO events_raw (event_id) VALUES (gen_random_uuid())"),
        (db.INGEST_ROLE, "SELECT email FROM users_pii"),
        (db.INGEST_ROLE, "UPDATE users_pii SET anonymized_at = now()"),
        (db.INGEST_ROLE, "DELETE FROM events_raw"),
        (db.INGEST_ROLE, "SELECT * FROM privacy_requests"),
        (db.GDPR_ROLE, "INSERT INTO events_raw (event_id) VALUES (gen_random_uuid())"),
        (db.GDPR_ROLE, "DELETE FROM privacy_audit_log"),
        (db.AUDITOR_ROLE, "SELECT email FROM privacy_requests"),
        (db.AUDITOR_ROLE, "SELECT email FROM users_pii"),
    ],
)
def test_roles_are_denied_what_they_do_not_need(settings: Settings, role: str, statement: str) -> None:
    with (
        db.connection(settings.database, role=role) as conn,
        pytest.raises(psycopg2.errors.InsufficientPrivilege),
        conn.cursor() as cur,
    ):
        cur.execute(statement)


@pytest.mark.parametrize(
    ("role", "statement"),
    [
        (db.ANALYTICS_ROLE, "SELECT count(*) FROM events_raw JOIN users_public USING (user_id)"),
        (db.ANALYTICS_ROLE, "SELECT sum(total_amount) FROM metrics_batch_daily"),
        (db.INGEST_ROLE, "SELECT user_id FROM users_pii WHERE anonymized_at IS NOT NULL"),
        (db.AUDITOR_ROLE, "SELECT status, count(*) FROM privacy_requests GROUP BY status"),
    ],
)
def test_roles_can_do_their_job(settings: Settings, role: str, statement: str) -> None:
    with db.connection(settings.database, role=role) as conn, conn.cursor() as cur:
        cur.execute(statement)
        assert cur.fetchall() is not None


def test_personal_data_in_metadata_is_redacted_before_storage(settings: Settings, group: str, tmp_path: Path) -> None:
    planted = {
        "email": "carla.rossi@example.com",
        "phone": "+39 06 6982 1234",
        "ip": "203.0.113.77",
        "card": "4111 1111 1111 1111",
        "iban": "DE89 3704 0044 0532 0130 00",
    }
    now = datetime.now(UTC)
    events = [
        Event(
            str(uuid.uuid4()),
            user_uuid(1),
            "page_view",
            now,
            None,
            {"note": f"contact {value}", "page": "/help", "order": "1234567890123"},
        )
        for value in planted.values()
    ]
    produce_events(settings, events)
    consume_all(settings, group, tmp_path)
    assert query(settings, "SELECT count(*) FROM events_raw") == [(5,)]
    for value in planted.values():
        assert find_anywhere(settings, value) == [], value
    assert dict(query(settings, "SELECT kind, redactions FROM ingest_redactions")) == {k: 1 for k in planted}
    stored = {json.dumps(m) for (m,) in query(settings, "SELECT metadata FROM events_raw")}
    assert all('"order": "1234567890123"' in m for m in stored)
    audit = run_command("reports.gdpr_audit_report")
    assert "Personal data redacted at ingest: **5**" in audit.stdout


def test_generator_skips_erased_users(settings: Settings) -> None:
    assert run_command("data_generators.generate_users", "--count", "3").returncode == 0
    for number in (1, 2):
        query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (person(settings, generated_user_id(42, number))[0],))
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    result = run_command("data_generators.generate_events", "--count", "200", "--rate", "0", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "200 delivered" in result.stdout
    users = {json.loads(value)["user_id"] for value in read_topic(settings, 200)}
    assert users == {generated_user_id(42, 3)}


JANE = ("jane.doe@example.org", "Jane Müller", "Hauptstraße 5, 10115 Berlin")
MAX = ("max.mustermann@example.com", "Max Mustermann", "Lindenweg 12, 80331 München")


def add_user(settings: Settings, number: int, email: str, name: str, address: str) -> None:
    """User ``number`` (its id is ``user_uuid(number)``), written directly."""
    user_id = user_uuid(number)
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (%s, %s, %s, %s)",
        (user_id, email, name, address),
    )
    query(settings, "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, 'DE', current_date)", (user_id,))


def store_events(settings: Settings, number: int, metadata: Sequence[Mapping[str, object] | str]) -> None:
    """Events of user ``number`` as the raw consumer would have stored them (metadata as objects or
    JSON text), written directly."""
    user_id = user_uuid(number)
    for offset, md in enumerate(metadata):
        query(
            settings,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, metadata, kafka_partition,"
            " kafka_offset) VALUES (gen_random_uuid(), %s, 'page_view', now(), current_date, %s::jsonb, 0, %s)",
            (user_id, md if isinstance(md, str) else json.dumps(md, ensure_ascii=False), offset),
        )


def analytics_metadata(settings: Settings, *, but_user: int) -> list[str]:
    """The metadata of every event but user ``but_user``'s, as the analytics role reads it."""
    with db.connection(settings.database, role=db.ANALYTICS_ROLE) as conn, conn.cursor() as cur:
        cur.execute("SELECT metadata::text FROM events_raw WHERE user_id <> %s", (user_uuid(but_user),))
        return [str(text) for (text,) in cur.fetchall()]


def test_an_erased_person_is_removed_from_their_own_events_and_dead_letters(settings: Settings) -> None:
    """Values the ingest redactor cannot know are a person's (a name, a street, an email written
    with a look-alike @) are removed at erasure, in their obvious spellings; the erasure checks
    that none is left and the audit report says so; another person's data is untouched."""
    add_user(settings, 1, *JANE)
    add_user(settings, 2, *MAX)
    variants = [
        "JANE.DOE@EXAMPLE.ORG",
        "jane.doe\uff20example.org",
        "jane.doe (at) example.org",
        "Jane  Müller",
        "MÜLLER, Jane",
        "Jane Mueller",
        "hauptstraße 5,\n10115 Berlin",
        "Hauptstrasse 5",
    ]
    store_events(
        settings,
        1,
        [
            {"note": f"gift card for {variants[0]}", "page": "/checkout", "product_id": 1234},
            {"to": {"name": variants[1], "lines": [variants[2], variants[3]]}},
            {variants[4]: True, "delivery": variants[6], "page": "/p/bags"},
            f'{{"greeting": "Dear {variants[5]}", "street": "{variants[7]}", "price": 19.90}}',  # exact digits kept
            {"page": "/shoes/product/12", "device": "mobile"},
        ],
    )
    untouched = [
        {"note": "for Max Mustermann, Lindenweg 12", "mail": "max.mustermann@example.com"},
        {"page": "/shoes/product/12", "note": "Jane who? not this user's data"},
    ]
    store_events(settings, 2, untouched)
    query(
        settings,
        "INSERT INTO dead_letter_events (consumer_group, topic, kafka_partition, kafka_offset, reason, payload) VALUES"
        " ('g', 't', 0, 1, 'not_json', %s), ('g', 't', 0, 2, 'not_json', %s), ('g', 't', 0, 3, 'not_json', %s)",
        ("{'who': 'MÜLLER, Jane' broken", '{"note":"jane.doe\uff20example.org"}', '{"note":"from Max Mustermann"}'),
    )
    max_before = query(settings, "SELECT metadata FROM events_raw WHERE user_id = %s ORDER BY kafka_offset", (user_uuid(2),))

    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (JANE[0],))
    result = run_command("gdpr.process_privacy_requests")
    assert result.returncode == 0, result.stderr

    stored = analytics_metadata(settings, but_user=2)
    assert len(stored) == 5
    letters = [str(p) for (p,) in query(settings, "SELECT payload FROM dead_letter_events ORDER BY id")]
    everything = "\n".join(stored + letters).lower()
    for value in ["jane.doe", "jane", "müller", "mueller", "muller", "hauptstra", "10115"]:
        assert value not in everything, value
    assert '"page": "/shoes/product/12"' in everything and '"price": 19.90' in everything and "/p/bags" in everything
    assert letters[:2] == [ERASED_PAYLOAD, ERASED_PAYLOAD] and letters[2] == '{"note":"from Max Mustermann"}'
    # The other person's events are exactly as they were.
    assert (
        query(settings, "SELECT metadata FROM events_raw WHERE user_id = %s ORDER BY kafka_offset", (user_uuid(2),)) == max_before
    )

    [(details,)] = query(settings, "SELECT details FROM privacy_audit_log WHERE action = 'erased'")
    assert details["residual_values"] == 0 and details["values_scrubbed"] >= len(variants)
    assert details["events_rekeyed"] == 5
    audit_text = " ".join(str(d) for (d,) in query(settings, "SELECT details::text FROM privacy_audit_log")).lower()
    assert "jane" not in audit_text and "müller" not in audit_text
    audit = run_command("reports.gdpr_audit_report")
    assert "Residual-PII check: 0" in audit.stdout, audit.stdout
    assert "jane" not in (result.stdout + result.stderr + audit.stdout).lower()


def test_the_audit_report_fails_when_an_erasure_left_values_behind(settings: Settings) -> None:
    """The residual check counts what erasures found still stored: it can fail."""
    query(settings, "INSERT INTO privacy_requests (email) VALUES ('gone@example.invalid')")
    [(request_id,)] = query(settings, "SELECT id FROM privacy_requests")
    query(
        settings,
        "INSERT INTO privacy_audit_log (request_id, action, actor, details) VALUES (%s, 'erased', 'test', %s::jsonb)",
        (request_id, json.dumps({"events_rekeyed": 3, "values_scrubbed": 2, "residual_values": 2})),
    )
    audit = run_command("reports.gdpr_audit_report", "--format", "md,json")
    assert "Residual-PII check: **2 FAIL**" in audit.stdout, audit.stdout
    [data_file] = list(settings.reports_dir.glob("gdpr_audit_report_*.json"))
    assert json.loads(data_file.read_text(encoding="utf-8"))["erasure_residual_values"] == 2


def test_an_erasure_in_the_same_batch_deletes_the_fresh_access_export(settings: Settings) -> None:
    add_user(settings, 1, *JANE)
    query(settings, "INSERT INTO privacy_requests (email, request_type) VALUES (%s, 'access'), (%s, 'erasure')", JANE[:1] * 2)
    result = run_command("gdpr.process_privacy_requests")
    assert result.returncode == 0, result.stderr
    assert "2 processed (completed 2)" in result.stdout
    assert [p for p in settings.reports_dir.rglob("*") if p.is_file()] == []
    assert query(settings, "SELECT count(*) FROM privacy_requests WHERE export_path IS NOT NULL") == [(0,)]
    [(access_id,)] = query(settings, "SELECT id FROM privacy_requests WHERE request_type = 'access'")
    deleted = query(
        settings, "SELECT details FROM privacy_audit_log WHERE request_id = %s AND action = 'export_deleted'", (access_id,)
    )
    assert deleted == [({"reason": "the person was erased", "file_removed": True},)]


def test_an_export_not_found_at_erasure_keeps_its_path_for_an_operator(settings: Settings) -> None:
    """Downloaded and deleted, or written to a reports folder that has moved since: the erasure
    cannot tell, so the path stays on the request and the audit names it."""
    add_user(settings, 1, *JANE)
    query(settings, "INSERT INTO privacy_requests (email, request_type) VALUES (%s, 'access')", JANE[:1])
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    [(export_path,)] = query(settings, "SELECT export_path FROM privacy_requests")
    Path(str(export_path)).unlink()
    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", JANE[:1])
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    assert query(settings, "SELECT export_path FROM privacy_requests WHERE request_type = 'access'") == [(export_path,)]
    details = query(settings, "SELECT details FROM privacy_audit_log WHERE action = 'export_deleted'")
    assert details == [({"reason": "the person was erased", "file_removed": False, "not_found_at": export_path},)]


def test_a_processor_started_from_another_folder_deletes_the_earlier_export(settings: Settings, tmp_path: Path) -> None:
    """A relative REPORTS_DIR is the project's folder, whatever the working directory: the path
    recorded is absolute, and an erasure run from elsewhere deletes the file it names."""
    add_user(settings, 1, *JANE)
    relative = Path("reports") / "output" / f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "REPORTS_DIR": str(relative), "PYTHONPATH": str(PROJECT_ROOT)}

    def process(cwd: Path) -> None:
        cwd.mkdir()
        done = subprocess.run(
            [sys.executable, "-m", "gdpr.process_privacy_requests"], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr

    try:
        query(settings, "INSERT INTO privacy_requests (email, request_type) VALUES (%s, 'access')", (JANE[0],))
        process(tmp_path / "one")
        [(export_path,)] = query(settings, "SELECT export_path FROM privacy_requests")
        export = Path(str(export_path))
        assert export.is_absolute() and export.is_file()
        assert export.is_relative_to(PROJECT_ROOT / relative)

        query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (JANE[0],))
        process(tmp_path / "two")
        assert not export.exists()
        assert query(settings, "SELECT details->>'file_removed' FROM privacy_audit_log WHERE action = 'export_deleted'") == [
            ("true",)
        ]
    finally:
        shutil.rmtree(PROJECT_ROOT / relative, ignore_errors=True)


def test_ingest_redacts_national_phones_lowercase_ibans_and_look_alike_at_signs(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """Metadata values are redacted one by one (what is stored stays JSON, a number stays a
    number), and a dead letter gets the same detectors."""
    planted = {
        "phone": "030/12345678",
        "iban": "de89 3704 0044 0532 0130 00",
        "email": "carla.rossi\uff20example.com",
        "card": "4111-1111-1111-1111",
        "ip": "203.0.113.77",
    }
    now = datetime.now(UTC)
    events = [
        Event(str(uuid.uuid4()), user_uuid(1), "page_view", now, None, {"note": f"contact {value}", "order": 4930123456})
        for value in planted.values()
    ]
    broken = json.dumps({"user_id": user_uuid(1), "event_type": "refund", "notes": list(planted.values())}).encode()
    produce_events(settings, events)
    produce(settings, [(b"1", broken)])
    consume_all(settings, group, tmp_path)
    assert query(settings, "SELECT count(*) FROM events_raw") == [(5,)]
    for value in planted.values():
        assert find_anywhere(settings, value) == [], value
    assert query(settings, "SELECT DISTINCT jsonb_typeof(metadata->'order'), metadata->>'order' FROM events_raw") == [
        ("number", "4930123456")
    ]
    assert dict(query(settings, "SELECT kind, redactions FROM ingest_redactions")) == {k: 1 for k in planted}
    [(payload,)] = query(settings, "SELECT payload FROM dead_letter_events")
    assert json.loads(str(payload))["notes"] == [f"[redacted-{kind}]" for kind in planted]


def test_a_second_erasure_of_an_erased_person_is_completed_as_already_erased(settings: Settings) -> None:
    assert run_command("data_generators.generate_users", "--count", "5", "--seed", "9").returncode == 0
    [(email,)] = query(settings, "SELECT email FROM users_pii ORDER BY user_id LIMIT 1")
    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (email,))
    assert run_command("gdpr.process_privacy_requests").returncode == 0

    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s), ('never.here@example.org')", (f" {email.upper()}",))
    assert run_command("gdpr.process_privacy_requests").returncode == 0

    rows = query(settings, "SELECT status, outcome FROM privacy_requests ORDER BY id")
    assert rows == [
        ("completed", "personal data erased; events re-keyed to a random id"),
        ("completed", "already erased by an earlier request"),
        ("not_found", "no user with this email"),
    ]
    [(details,)] = query(settings, "SELECT details FROM privacy_audit_log WHERE request_id = 2 AND action = 'completed'")
    assert details == {"already_erased": True}
