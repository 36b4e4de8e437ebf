"""Migration 009 (the design's data model) converts a populated database in place: every row is
kept, numeric user ids become the UUIDs the event model gives them, and the platform works on
the result (an event with a numeric user id still joins its user; an erasure re-keys to a random
UUID)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from psycopg2 import sql

from core import db
from core.config import Settings
from core.events import user_uuid
from gdpr.processing import process_privacy_requests
from tests.helpers import RAW, produce, query, start_service, wait_caught_up
from tests.integration.core.databases import database_before

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)
ERASED_BEFORE = 4611686018427387905  # a pseudonym of the numeric era, in [2**62, 2**63)


@pytest.fixture
def old_database(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A database of its own at migration 008."""
    with database_before(settings, tmp_path, "009") as old:
        yield old


def fill_as_of_008(old: Settings) -> None:
    """Users, an erased user, events, metrics, requests (with their audit rows), a dead letter."""
    query(
        old,
        "INSERT INTO users_pii (user_id, email, full_name, address, created_at) VALUES"
        " (1, 'anna.alt@example.org', 'Anna Alt', 'Altweg 1, 10115 Berlin', '2026-01-02T03:04:05Z'),"
        " (2, 'bert.bauer@example.org', 'Bert Bauer', 'Bauweg 2, 80331 München', '2026-02-03T04:05:06Z')",
    )
    query(old, "INSERT INTO users_pii (user_id, anonymized_at) VALUES (%s, now())", (ERASED_BEFORE,))
    query(
        old,
        "INSERT INTO users_public (user_id, country, signup_date, is_erased) VALUES"
        " (1, 'DE', '2026-01-02', false), (2, 'FR', '2026-02-03', false), (%s, 'DE', '2025-05-05', true)",
        (ERASED_BEFORE,),
    )
    for offset, (user_id, kind, amount) in enumerate(
        [(1, "page_view", None), (1, "purchase", "12.34"), (2, "add_to_cart", None), (ERASED_BEFORE, "purchase", "5.00")]
    ):
        query(
            old,
            "INSERT INTO events_raw (event_id, user_id, event_type, event_timestamp, event_date, amount, metadata,"
            ' kafka_partition, kafka_offset, ingested_at) VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, \'{"page": "/p"}\','
            " 0, %s, '2026-11-20T12:00:00Z')",
            (user_id, kind, datetime(2026, 11, 20, 10, tzinfo=UTC), DAY, amount, offset),
        )
    with db.connection(old.database) as conn, conn, conn.cursor() as cur:
        for table in ("metrics_streaming_daily", "metrics_batch_daily"):
            statement = sql.SQL("INSERT INTO {} (event_date, event_type, event_count, revenue) VALUES (%s, 'purchase', 2, 17.34)")
            cur.execute(statement.format(sql.Identifier(table)), (DAY,))
    query(old, "INSERT INTO privacy_requests (email) VALUES ('anna.alt@example.org'), ('nobody@example.org')")
    query(
        old,
        "INSERT INTO dead_letter_events (consumer_group, topic, kafka_partition, kafka_offset, reason, payload)"
        " VALUES ('g', 't', 0, 9, 'not_json', '{broken')",
    )


def test_a_database_of_008_upgrades_in_place_and_keeps_working(old_database: Settings, group: str, tmp_path: Path) -> None:
    old = old_database
    fill_as_of_008(old)
    [(requests_before,)] = query(old, "SELECT array_agg(request_id ORDER BY request_id) FROM privacy_requests")
    audit_before = query(old, "SELECT request_id, action FROM privacy_audit_log ORDER BY id")

    assert db.migrate(old.database) == [p.name for p in db.migration_files() if p.name >= "009"]

    users = query(old, "SELECT user_id::text, email, created_at FROM users_pii ORDER BY email NULLS LAST")
    assert [(u, e) for u, e, _c in users] == [
        (user_uuid(1), "anna.alt@example.org"),
        (user_uuid(2), "bert.bauer@example.org"),
        (user_uuid(ERASED_BEFORE), None),
    ]
    assert query(
        old, "SELECT count(*) FROM users_public p JOIN users_pii u USING (user_id) WHERE p.created_at = u.created_at"
    ) == [(3,)]
    events = query(old, "SELECT user_id::text, event_type, amount, created_at FROM events_raw ORDER BY kafka_offset")
    assert [(u, k, a) for u, k, a, _c in events] == [
        (user_uuid(1), "page_view", None),
        (user_uuid(1), "purchase", Decimal("12.34")),
        (user_uuid(2), "add_to_cart", None),
        (user_uuid(ERASED_BEFORE), "purchase", Decimal("5.00")),
    ]
    assert {c for *_rest, c in events} == {datetime(2026, 11, 20, 12, tzinfo=UTC)}
    for table in ("metrics_streaming_daily", "metrics_batch_daily"):
        statement = sql.SQL("SELECT event_date, event_type, total_events, total_amount FROM {}").format(sql.Identifier(table))
        with db.connection(old.database) as conn, conn, conn.cursor() as cur:
            cur.execute(statement)
            assert cur.fetchall() == [(DAY, "purchase", 2, Decimal("17.34"))]
    assert query(old, "SELECT array_agg(id ORDER BY id) FROM privacy_requests") == [(requests_before,)]
    assert query(old, "SELECT request_id, action FROM privacy_audit_log ORDER BY id") == audit_before
    assert query(old, "SELECT count(*) FROM dead_letter_events") == [(1,)]

    # An event still in Kafka with a numeric user id joins the converted user.
    legacy = {
        "event_id": str(uuid.uuid4()),
        "user_id": 2,
        "event_type": "purchase",
        "event_timestamp": datetime.now(UTC).isoformat(),
        "amount": "7.50",
        "metadata": {},
    }
    produce(old, [(b"2", json.dumps(legacy).encode())])
    raw = start_service(RAW, f"raw-{group}", tmp_path, {"DATABASE_URL": old.database.url})
    try:
        wait_caught_up(old, f"raw-{group}")
    finally:
        assert raw.stop() == 0, raw.output()
    assert query(old, "SELECT user_id::text FROM events_raw WHERE event_id = %s", (legacy["event_id"],)) == [(user_uuid(2),)]

    # The pending request of the numeric era is processed on the new model; the trigger that
    # names the request column still audits new requests.
    assert process_privacy_requests(old) == {"completed": 1, "not_found": 1}
    assert query(old, "SELECT email, full_name, address FROM users_pii WHERE user_id = %s", (user_uuid(1),)) == [
        (None, None, None)
    ]
    [(pseudonym,)] = query(old, "SELECT DISTINCT user_id::text FROM events_raw WHERE event_type = 'page_view'")
    assert uuid.UUID(pseudonym).version == 4 and pseudonym != user_uuid(1)
    query(old, "INSERT INTO privacy_requests (email) VALUES ('bert.bauer@example.org')")
    [(new_id,)] = query(old, "SELECT max(id) FROM privacy_requests")
    assert query(old, "SELECT action FROM privacy_audit_log WHERE request_id = %s", (new_id,)) == [("received",)]
