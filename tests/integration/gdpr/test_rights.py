"""The rights beside erasure and access, through the real processor and PostgreSQL:
internationalised addresses, rectification, restriction, objection, legal holds, the expiry of
unconfirmed requests and of exports, and the vacuum after an erasure."""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import pytest
from psycopg2 import sql

import devstack
import gdpr.processing as processor
from core import db
from core.config import Settings
from core.events import Event, user_uuid
from gdpr import vacuum
from gdpr.email_address import email_hmac
from gdpr.processing import process_pending
from tests.helpers import consume_all, produce_events, query, run_command, wait_until

pytestmark = pytest.mark.integration


def add_person(settings: Settings, number: int, email: str, name: str = "Erika Muster", address: str = "Weg 1, Köln") -> str:
    user_id = user_uuid(number)
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (%s, %s, %s, %s)",
        (user_id, email, name, address),
    )
    query(settings, "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, 'DE', current_date)", (user_id,))
    return user_id


def add_todays_event(settings: Settings, user_id: str) -> None:
    query(
        settings,
        "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, kafka_partition, kafka_offset)"
        " VALUES (gen_random_uuid(), %s, 'page_view', now(), (now() AT TIME ZONE 'UTC')::date, 0, 1)",
        (user_id,),
    )


def request(settings: Settings, email: str, kind: str = "erasure", corrections: dict[str, str] | None = None) -> int:
    [(request_id,)] = query(
        settings,
        "INSERT INTO privacy_requests (email, request_type, corrections) VALUES (%s, %s, %s) RETURNING id",
        (email, kind, None if corrections is None else json.dumps(corrections)),
    )
    return int(request_id)


def status(settings: Settings, request_id: int) -> str:
    [(value,)] = query(settings, "SELECT status FROM privacy_requests WHERE id = %s", (request_id,))
    return str(value)


def actions(settings: Settings, request_id: int) -> list[tuple[str, dict[str, object]]]:
    rows = query(settings, "SELECT action, details FROM privacy_audit_log WHERE request_id = %s ORDER BY id", (request_id,))
    return [(str(action), dict(details)) for action, details in rows]


def test_an_internationalised_address_is_erased_when_named_exactly(settings: Settings) -> None:
    user_id = add_person(settings, 1, "José.Müller@Exämple.de")
    other = add_person(settings, 2, "jose.muller@example.de")
    # Decomposed accents (as some keyboards send them) are the same mailbox; another case of a
    # non-ASCII address is another string, and so not this person.
    exact = request(settings, "Jose\u0301.Mu\u0308ller@Exa\u0308mple.de")
    other_case = request(settings, "josé.müller@exämple.de")
    assert process_pending(settings) == {"completed": 1, "not_found": 1}
    assert (status(settings, exact), status(settings, other_case)) == ("completed", "not_found")
    assert query(settings, "SELECT email, full_name FROM users_pii WHERE user_id = %s", (user_id,)) == [(None, None)]
    assert query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (other,)) == [("jose.muller@example.de",)]
    [(proof,)] = query(settings, "SELECT email_hmac FROM privacy_requests WHERE id = %s", (exact,))
    assert proof == email_hmac(settings.gdpr_hmac_key, "José.Müller@Exämple.de")
    # An operator's request is trusted as verified, and the trail says how.
    assert ("verified", {"method": "operator request (SQL), trusted"}) in actions(settings, exact)


def test_rectification_applies_the_values_and_audits_only_field_names(settings: Settings) -> None:
    user_id = add_person(settings, 3, "erika@example.com", "Erika Mustermann", "Altweg 1, Bonn")
    add_person(settings, 4, "taken@example.com")
    fixed = request(
        settings, "erika@example.com", "rectification", {"full_name": "Erika Musterfrau", "address": "Neuweg 2, Bonn"}
    )
    process_pending(settings)
    assert status(settings, fixed) == "completed"
    assert query(settings, "SELECT full_name, address FROM users_pii WHERE user_id = %s", (user_id,)) == [
        ("Erika Musterfrau", "Neuweg 2, Bonn")
    ]
    assert ("rectified", {"fields": ["address", "full_name"]}) in actions(settings, fixed)
    [(corrections, email)] = query(settings, "SELECT corrections, email FROM privacy_requests WHERE id = %s", (fixed,))
    assert corrections is None and email is None
    [(trail,)] = query(settings, "SELECT string_agg(details::text || actor, ' ') FROM privacy_audit_log")
    assert "Musterfrau" not in trail and "Neuweg" not in trail

    # A corrected email that is somebody else's, or fields that cannot be corrected: refused,
    # nothing changed.
    clash = request(settings, "erika@example.com", "rectification", {"email": "TAKEN@example.com"})
    unknown = request(settings, "erika@example.com", "rectification", {"country": "FR"})
    process_pending(settings)
    assert (status(settings, clash), status(settings, unknown)) == ("rejected", "rejected")
    assert query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (user_id,)) == [("erika@example.com",)]

    # Hostile corrections through the SQL path: refused with a reason, nothing changed.
    hostile = [{"full_name": {"nested": "x"}}, {"address": "x" * 10_000}, {"email": "not an address"}, {}, {"full_name": "  "}]
    hostile_ids = [request(settings, "erika@example.com", "rectification", h) for h in hostile]  # type: ignore[arg-type]
    process_pending(settings)
    assert [status(settings, i) for i in hostile_ids] == ["rejected"] * len(hostile)
    assert query(settings, "SELECT full_name, email FROM users_pii WHERE user_id = %s", (user_id,)) == [
        ("Erika Musterfrau", "erika@example.com")
    ]

    moved = request(settings, "erika@example.com", "rectification", {"email": "Erika.New@Example.com"})
    process_pending(settings)
    assert status(settings, moved) == "completed"
    assert query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (user_id,)) == [("erika.new@example.com",)]


def test_restriction_stops_storing_and_counting_later_events_and_keeps_earlier_ones(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    user_id = add_person(settings, 5, "rita@example.com")
    before = datetime.now(UTC) - timedelta(hours=1)
    earlier = [Event(str(uuid.uuid4()), user_id, "page_view", before + timedelta(seconds=i)) for i in range(3)]
    produce_events(settings, earlier)
    consume_all(settings, group, tmp_path)
    restricted = request(settings, "rita@example.com", "restriction")
    assert process_pending(settings) == {"completed": 1}
    assert ("restricted", {}) in actions(settings, restricted)
    assert query(
        settings, "SELECT count(*) FROM processing_restrictions WHERE user_id = %s AND lifted_at IS NULL", (user_id,)
    ) == [(1,)]
    later = [Event(str(uuid.uuid4()), user_id, "page_view", datetime.now(UTC) + timedelta(minutes=1)) for _ in range(2)]
    produce_events(settings, later)
    consume_all(settings, group, tmp_path)
    assert query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s", (user_id,)) == [(3,)]
    [(dropped,)] = query(
        settings,
        "SELECT coalesce(sum(dropped_events), 0) FROM consent_dropped_daily WHERE consumer_group = %s",
        (f"raw-{group}",),
    )
    assert dropped == 2
    # Nothing was stored for the person's other data: it is kept, not erased.
    assert query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (user_id,)) == [("rita@example.com",)]


def test_the_email_stays_while_an_erasure_or_a_hold_is_open_for_the_person(settings: Settings) -> None:
    user_id = add_person(settings, 10, "bound@example.com")
    # An erasure waiting on a hold: changing the address would let it end not_found, or let a
    # new erasure under the new address slip past the hold.
    query(
        settings,
        "INSERT INTO legal_holds (email_hmac, reason, placed_by) VALUES (%s, 'case 17', 'dpo:test')",
        (email_hmac(settings.gdpr_hmac_key, "bound@example.com"),),
    )
    erasure = request(settings, "bound@example.com")
    process_pending(settings)
    assert status(settings, erasure) == "on_hold"
    moved = request(settings, "bound@example.com", "rectification", {"email": "free@example.com", "full_name": "B. Ound"})
    process_pending(settings)
    assert status(settings, moved) == "rejected"
    assert query(settings, "SELECT email, full_name FROM users_pii WHERE user_id = %s", (user_id,)) == [
        ("bound@example.com", "Erika Muster")
    ]
    # The name alone may be corrected.
    renamed = request(settings, "bound@example.com", "rectification", {"full_name": "B. Ound"})
    process_pending(settings)
    assert status(settings, renamed) == "completed"
    query(settings, "UPDATE legal_holds SET released_at = now()")
    process_pending(settings)
    assert status(settings, erasure) == "completed"


def test_the_api_login_files_only_unverified_api_requests(settings: Settings) -> None:
    # Its INSERT covers status and channel; the database still makes the row what the API files.
    with db.connection(settings.database, role=db.PRIVACY_API_ROLE) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO privacy_requests (email, request_type, status, channel)"
            " VALUES ('x@example.com', 'erasure', 'pending', 'sql') RETURNING id"
        )
        [(request_id,)] = cur.fetchall()
    assert query(settings, "SELECT status, channel FROM privacy_requests WHERE id = %s", (request_id,)) == [("unverified", "api")]
    # The owner's (an operator's) row keeps what it says.
    operator = request(settings, "y@example.com")
    assert query(settings, "SELECT status, channel FROM privacy_requests WHERE id = %s", (operator,)) == [("pending", "sql")]


def test_objection_withdraws_analytics_consent(settings: Settings) -> None:
    user_id = add_person(settings, 6, "otto@example.com")
    objected = request(settings, "otto@example.com", "objection")
    process_pending(settings)
    assert status(settings, objected) == "completed"
    assert query(settings, "SELECT purpose, granted, source FROM consent_ledger WHERE user_id = %s", (user_id,)) == [
        ("analytics", False, "objection")
    ]


def test_an_erasure_waits_on_a_legal_hold_and_runs_when_it_ends(settings: Settings) -> None:
    user_id = add_person(settings, 7, "held@example.com")
    proof = email_hmac(settings.gdpr_hmac_key, "held@example.com")
    query(
        settings,
        "INSERT INTO legal_holds (email_hmac, reason, placed_by, until)"
        " VALUES (%s, 'tax audit', 'dpo:test', now() + interval '1 hour')",
        (proof,),
    )
    erasure = request(settings, "Held@example.com")
    [(due_before,)] = query(settings, "SELECT due_at FROM privacy_requests WHERE id = %s", (erasure,))
    assert process_pending(settings) == {"on_hold": 1}
    assert status(settings, erasure) == "on_hold"
    assert query(settings, "SELECT email IS NOT NULL, due_at FROM privacy_requests WHERE id = %s", (erasure,)) == [
        (True, due_before)
    ]
    assert query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (user_id,)) == [("held@example.com",)]
    # Another run changes nothing while the hold lasts.
    assert process_pending(settings) == {}
    query(settings, "UPDATE legal_holds SET until = now() - interval '1 second'")
    assert process_pending(settings) == {"completed": 1}
    assert query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (user_id,)) == [(None,)]
    trail = [action for action, _ in actions(settings, erasure)]
    assert trail.index("held") < trail.index("hold_released") < trail.index("erased")


def test_unconfirmed_api_requests_expire_and_keep_only_the_proof(settings: Settings) -> None:
    [(request_id,)] = query(
        settings,
        "INSERT INTO privacy_requests (email, request_type, channel, status)"
        " VALUES ('late@example.com', 'access', 'api', 'unverified')"
        " RETURNING id",
    )
    query(
        settings,
        "INSERT INTO privacy_verifications (request_id, code_hash, expires_at) VALUES (%s, 'x', now() - interval '1 second')",
        (request_id,),
    )
    fresh = query(
        settings,
        "INSERT INTO privacy_requests (email, channel, status) VALUES ('soon@example.com', 'api', 'unverified') RETURNING id",
    )[0][0]
    query(
        settings,
        "INSERT INTO privacy_verifications (request_id, code_hash, expires_at) VALUES (%s, 'y', now() + interval '1 hour')",
        (fresh,),
    )
    process_pending(settings)
    assert query(settings, "SELECT status, email, email_hmac FROM privacy_requests WHERE id = %s", (request_id,)) == [
        ("expired", None, email_hmac(settings.gdpr_hmac_key, "late@example.com"))
    ]
    assert status(settings, fresh) == "unverified"
    assert [a for a, _ in actions(settings, request_id)] == ["received", "expired"]
    # Only the code still awaited is kept.
    assert query(settings, "SELECT request_id FROM privacy_verifications") == [(fresh,)]


def test_an_access_export_expires_and_is_deleted(settings: Settings) -> None:
    add_person(settings, 8, "exp@example.com")
    access = request(settings, "exp@example.com", "access")
    process_pending(settings)
    [(path, days)] = query(
        settings,
        "SELECT export_path, round(extract(epoch FROM export_expires_at - processed_at) / 86400)"
        " FROM privacy_requests WHERE id = %s",
        (access,),
    )
    assert Path(path).is_file() and days == settings.access_export_days
    query(settings, "UPDATE privacy_requests SET export_expires_at = now() - interval '1 second' WHERE id = %s", (access,))
    process_pending(settings)
    assert not Path(path).exists()
    assert query(settings, "SELECT export_path FROM privacy_requests WHERE id = %s", (access,)) == [(None,)]
    assert ("export_deleted", {"reason": "the download period ended", "file_removed": True}) in actions(settings, access)


def test_the_erased_tables_are_vacuumed_after_the_erasure(settings: Settings) -> None:
    """users_pii, and every partition of events_raw: VACUUM checks its privilege per partition
    (sql/021 grants it on each), so the person's old row versions go from today's events too."""
    user_id = add_person(settings, 9, "vac@example.com")
    add_todays_event(settings, user_id)
    [(partition,)] = query(settings, "SELECT tableoid::regclass::text FROM events_raw WHERE user_id = %s", (user_id,))
    statement = "SELECT relname, vacuum_count FROM pg_stat_user_tables WHERE relname = ANY(%s)"
    before = dict(query(settings, statement, (["users_pii", partition],)))
    request(settings, "vac@example.com")
    process_pending(settings)

    def vacuumed() -> bool:
        now = dict(query(settings, statement, (["users_pii", partition],)))
        return all(now[table] > before[table] for table in ("users_pii", partition))

    wait_until(vacuumed, timeout=30, what=f"users_pii and {partition} vacuumed")


def superuser(settings: Settings) -> psycopg2.extensions.connection:
    """The embedded stack's superuser, to read pages with pageinspect (its extension is created in
    the caller's transaction, which rolls back)."""
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("needs the embedded stack's superuser, to read the pages with pageinspect")
    url = urlsplit(settings.database.url)
    assert url.port is not None
    return psycopg2.connect(devstack.superuser_url(Path(data_dir), url.port, url.path[1:]))


def index_entries_of(settings: Settings, partition: str, user_id: str) -> int:
    """How many entries of the partition's user_id index hold this id, dead ones included (read
    from the index pages themselves: a scan would skip those whose rows are dead)."""
    with superuser(settings) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        cur.execute(
            "SELECT i.indexrelid::regclass::text FROM pg_index AS i JOIN pg_attribute AS a"
            " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
            " WHERE i.indrelid = %s::regclass AND i.indnatts = 1 AND a.attname = 'user_id'",
            (partition,),
        )
        [(index,)] = cur.fetchall()
        cur.execute(
            # A leaf entry holding several row pointers (deduplicated) counts as that many.
            "SELECT coalesce(sum(coalesce(cardinality(t.tids), 1)), 0)"
            " FROM generate_series(1, pg_relation_size(%(index)s::regclass) / 8192 - 1) AS b,"
            " LATERAL bt_page_stats(%(index)s, b::int) AS s, LATERAL bt_page_items(get_raw_page(%(index)s, b::int)) AS t"
            " WHERE s.type = 'l' AND replace(t.data, ' ', '') = encode(uuid_send(%(id)s::uuid), 'hex')",
            {"index": index, "id": user_id},
        )
        [(count,)] = cur.fetchall()
        conn.rollback()
    return int(count)


def test_the_old_versions_of_re_keyed_events_leave_their_pages(settings: Settings) -> None:
    """The vacuum after the erasure prunes the old row versions of the person's events, which
    held the former user id and the erased values: their line pointers are left with no tuple
    behind them."""
    user_id = add_person(settings, 10, "pages@example.com")
    query(
        settings,
        "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, metadata, kafka_partition,"
        " kafka_offset) VALUES (gen_random_uuid(), %s, 'page_view', now(), (now() AT TIME ZONE 'UTC')::date,"
        ' \'{"note": "write to pages@example.com"}\', 0, 1)',
        (user_id,),
    )
    [(partition, page)] = query(
        settings, "SELECT tableoid::regclass::text, (ctid::text::point)[0]::int FROM events_raw WHERE user_id = %s", (user_id,)
    )
    request(settings, "pages@example.com")
    process_pending(settings)
    with superuser(settings) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
            cur.execute("SELECT lp_flags, lp_len, t_data FROM heap_page_items(get_raw_page(%s, %s))", (partition, page))
            items = cur.fetchall()
        conn.rollback()  # the extension is not left behind
    former = uuid.UUID(user_id).bytes
    holding = [bytes(data) for _flags, length, data in items if length and data is not None]
    assert not [data for data in holding if former in data or b"pages@example.com" in data]
    # The old versions' line pointers: dead or already unused, with no tuple behind them.
    assert any(flags in (0, 3) and not length for flags, length, _data in items)


def test_a_large_erasure_leaves_the_index_cleanup_to_finish_vacuum(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past INLINE_INDEX_CLEANUP_BYTES (here 0) the erasure vacuums the partition's heap only and
    queues it: the old row versions leave their pages at once, the index entries of the former id
    stay until ``--finish-vacuum``, which removes them and empties the queue."""
    monkeypatch.setattr(vacuum, "INLINE_INDEX_CLEANUP_BYTES", 0)
    user_id = add_person(settings, 11, "queue@example.com")
    query(
        settings,
        "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, kafka_partition, kafka_offset)"
        " SELECT gen_random_uuid(), %s, 'page_view', now(), (now() AT TIME ZONE 'UTC')::date, 0, n"
        " FROM generate_series(1, 3) AS n",
        (user_id,),
    )
    [(partition,)] = query(settings, "SELECT DISTINCT tableoid::regclass::text FROM events_raw WHERE user_id = %s", (user_id,))
    assert index_entries_of(settings, partition, user_id) == 3
    request(settings, "queue@example.com")
    process_pending(settings)
    assert query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s", (user_id,)) == [(0,)]
    assert query(settings, "SELECT partition_name FROM erasure_index_cleanup") == [(partition,)]
    with superuser(settings) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        cur.execute(
            "SELECT count(*) FROM generate_series(0, pg_relation_size(%(p)s::regclass) / 8192 - 1) AS b,"
            " LATERAL heap_page_items(get_raw_page(%(p)s, b::int)) AS t WHERE t.lp_len > 0"
            " AND position(uuid_send(%(id)s::uuid) IN t.t_data) > 0",
            {"p": partition, "id": user_id},
        )
        assert cur.fetchall() == [(0,)]  # no tuple holds the former id any more
        conn.rollback()
    assert index_entries_of(settings, partition, user_id) == 3  # the index cleanup waits

    finished = run_command("gdpr.process_privacy_requests", "--finish-vacuum")
    assert finished.returncode == 0, finished.stderr
    assert "vacuum finished for 1 partitions of events_raw" in finished.stdout
    assert query(settings, "SELECT count(*) FROM erasure_index_cleanup") == [(0,)]
    assert index_entries_of(settings, partition, user_id) == 0


def test_a_small_erasure_cleans_the_indexes_itself(settings: Settings) -> None:
    user_id = add_person(settings, 12, "inline@example.com")
    add_todays_event(settings, user_id)
    [(partition,)] = query(settings, "SELECT tableoid::regclass::text FROM events_raw WHERE user_id = %s", (user_id,))
    request(settings, "inline@example.com")
    process_pending(settings)
    assert query(settings, "SELECT count(*) FROM erasure_index_cleanup") == [(0,)]
    assert index_entries_of(settings, partition, user_id) == 0


def test_finish_vacuum_passes_over_a_partition_dropped_while_it_waits(settings: Settings) -> None:
    """Retention may drop a queued partition between the queue's read and its VACUUM: the
    VACUUM then finds no table, and the partition just leaves the queue."""
    day = datetime.now(UTC).date() - timedelta(days=900)
    query(settings, "SELECT events_raw_create_partitions(%s, %s)", (day, day + timedelta(days=1)))
    [(partition,)] = query(
        settings,
        "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events_raw'::regclass AND pg_get_expr(c.relpartbound, c.oid) LIKE %s",
        (f"%{day}%",),
    )
    query(settings, "INSERT INTO erasure_index_cleanup (partition_name) VALUES (%s)", (partition,))
    outcome: list[int | BaseException] = []

    def finish() -> None:
        try:
            with db.connection(settings.database, application_name="test-finish", role=db.GDPR_ROLE) as conn:
                outcome.append(vacuum.finish_vacuum(conn))
        except BaseException as e:  # reported by the assertion below
            outcome.append(e)

    with db.connection(settings.database, application_name="test-retention") as dropper, dropper.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition)))  # not committed yet
        worker = threading.Thread(target=finish)
        worker.start()
        wait_until(
            lambda: query(settings, "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted") != [(0,)],
            what="the VACUUM to wait for the dropped partition",
        )
        dropper.commit()
    worker.join(timeout=60)
    assert outcome == [1]
    assert query(settings, "SELECT count(*) FROM erasure_index_cleanup") == [(0,)]


def test_an_erasure_that_waits_too_long_for_the_lock_is_rolled_back_and_retried(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A job holding the erasure lock shared (an ingest batch, retention, a person_days step)
    past ERASURE_LOCK_WAIT_MS rolls the batch back, to be done again, rather than reach the
    statement timeout, which would end --watch; the request stays pending meanwhile."""
    monkeypatch.setattr(processor, "ERASURE_LOCK_WAIT_MS", 100)
    add_todays_event(settings, add_person(settings, 13, "busy@example.com"))
    erasure = request(settings, "busy@example.com")
    with db.connection(settings.database, application_name="test-holder") as holder, holder.cursor() as cur:
        cur.execute("SELECT platform_lock('erasure', false, 1000)")  # as an ingest batch does (sql/030)
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            process_pending(settings)
        holder.rollback()
    assert status(settings, erasure) == "pending"
    assert caplog.text.count("doing it again") == processor.BATCH_RETRIES
    process_pending(settings)
    assert status(settings, erasure) == "completed"
