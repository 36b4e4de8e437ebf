"""What an erasure leaves behind, through the real broker, consumers and processor: late events
of an erased person keep no personal data, no stored row leads back to the person's Kafka
messages, an erased person cannot consent again, and an access export holds their dead letters."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core import db
from core.config import Settings
from core.events import Event
from data_generators.generate_users import generated_user_id
from tests.helpers import consume_all, metrics_table, produce, produce_events, query, run_command

pytestmark = pytest.mark.integration

CARD = 4111111111111111  # a test card number that passes the Luhn check
CARD_SPACED = "4111 1111 1111 1111"


def make_people(count: int = 3, seed: int = 11) -> list[str]:
    assert run_command("data_generators.generate_users", "--count", str(count), "--seed", str(seed)).returncode == 0
    return [generated_user_id(seed, n) for n in range(1, count + 1)]


def erase(settings: Settings, user_id: str) -> None:
    [(email,)] = query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (user_id,))
    query(settings, "INSERT INTO privacy_requests (email) VALUES (%s)", (email,))
    result = run_command("gdpr.process_privacy_requests")
    assert result.returncode == 0, result.stderr
    assert query(settings, "SELECT anonymized_at IS NOT NULL FROM users_pii WHERE user_id = %s", (user_id,)) == [(True,)]


def test_a_late_event_of_an_erased_person_keeps_no_card_number(settings: Settings, group: str, tmp_path: Path) -> None:
    """The card number arrives as a JSON integer, as a string and as a key: erasing the strings of
    the late event must not undo the redaction (numbers are not strings)."""
    [erased, _other, _third] = make_people()
    before = datetime.now(UTC)
    erase(settings, erased)
    metadata = {"card": CARD, "card_text": CARD_SPACED, "cards": [CARD], "by_card": {str(CARD): 1}, "qty": 2}
    late = Event(str(uuid.uuid4()), erased, "page_view", before, None, metadata)
    produce_events(settings, [late])
    consume_all(settings, group, tmp_path)
    [(stored,)] = query(settings, "SELECT metadata::text FROM events_raw")
    assert str(CARD) not in stored and "4111" not in stored, stored
    assert json.loads(stored)["qty"] == 2


def test_after_an_erasure_no_stored_row_leads_to_the_persons_kafka_messages(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """Each of the person's messages is keyed by their former id and names its event id: after
    the erasure no row keeps an event id, partition or offset of theirs, every aggregate is as
    before, and a copy of an erased event sent again is still not stored (nor counted) twice."""
    [person, other, _third] = make_people()
    now = datetime.now(UTC)
    theirs = [Event(str(uuid.uuid4()), person, "page_view", now, None, {"page": f"/p/{i}"}) for i in range(12)]
    others = [Event(str(uuid.uuid4()), other, "page_view", now, None, {"page": "/q"}) for _ in range(8)]
    produce_events(settings, theirs + others)
    # A dead letter that names the person's user id (an unknown event type).
    produce(settings, [(person.encode(), json.dumps({"user_id": person, "event_type": "refund"}).encode())])
    consume_all(settings, group, tmp_path)
    ids = [e.event_id for e in theirs]
    messages = query(
        settings,
        "SELECT kafka_partition, kafka_offset FROM events_raw WHERE user_id = %s"
        " UNION ALL SELECT kafka_partition, kafka_offset FROM dead_letter_events",
        (person,),
    )
    assert len(messages) == 13
    day = now.date().isoformat()
    assert run_command("batch.batch_metrics", day).returncode == 0
    streaming_before = metrics_table(settings, "metrics_streaming_daily")
    batch_before = metrics_table(settings, "metrics_batch_daily")

    erase(settings, person)

    assert query(settings, "SELECT count(*) FROM events_raw WHERE event_id = ANY(%s::uuid[])", (ids,)) == [(0,)]
    leading_back = (
        "SELECT count(*) FROM (SELECT kafka_partition, kafka_offset FROM events_raw UNION ALL"
        " SELECT kafka_partition, kafka_offset FROM dead_letter_events) AS stored"
        " WHERE (kafka_partition, kafka_offset) IN (SELECT * FROM unnest(%s::int[], %s::bigint[]))"
    )
    pairs = ([p for p, _o in messages], [o for _p, o in messages])
    assert query(settings, leading_back, pairs) == [(0,)]
    assert query(settings, "SELECT count(*) FROM events_raw WHERE kafka_offset IS NULL") == [(12,)]
    # The other person's events keep theirs.
    assert query(settings, "SELECT count(*) FROM events_raw WHERE user_id = %s AND kafka_offset IS NOT NULL", (other,)) == [(8,)]
    assert metrics_table(settings, "metrics_streaming_daily") == streaming_before
    assert run_command("batch.batch_metrics", day).returncode == 0
    assert metrics_table(settings, "metrics_batch_daily") == batch_before

    # Sent again: a copy of an erased event (ignored), and a late event never seen before, twice
    # (stored once, under fresh ids and with no offset either).
    late = Event(str(uuid.uuid4()), person, "page_view", now, None, {"page": "/late"})
    produce_events(settings, [theirs[3], late, late])
    consume_all(settings, group, tmp_path)
    assert query(settings, "SELECT count(*) FROM events_raw") == [(21,)]
    assert query(settings, "SELECT count(*) FROM events_raw WHERE event_id = ANY(%s::uuid[])", ([*ids, late.event_id],)) == [(0,)]
    assert query(settings, "SELECT count(*) FROM events_raw WHERE kafka_offset IS NULL") == [(13,)]
    assert run_command("batch.batch_metrics", day).returncode == 0
    assert metrics_table(settings, "metrics_batch_daily") == {
        key: (count + 1, amount) for key, (count, amount) in batch_before.items()
    }


def test_the_consumers_never_count_an_erased_person_again_whatever_the_ledger_says(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """A grant recorded after an erasure (as one could be before sql/035 refused them) does not
    bring the former id back: both consumers drop its new events as withdrawn."""
    [person, _other, _third] = make_people()
    erase(settings, person)
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE consent_ledger DISABLE TRIGGER consent_ledger_not_erased")
        cur.execute(
            "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, 'analytics', true, 'collector:web')",
            (person,),
        )
        cur.execute("ALTER TABLE consent_ledger ENABLE TRIGGER consent_ledger_not_erased")
    later = [Event(str(uuid.uuid4()), person, "page_view", datetime.now(UTC), None, {}) for _ in range(4)]
    produce_events(settings, later)
    consume_all(settings, group, tmp_path)
    assert query(settings, "SELECT count(*) FROM events_raw") == [(0,)]
    assert metrics_table(settings, "metrics_streaming_daily") == {}
    dropped = query(settings, "SELECT consumer_group, reason, dropped_events FROM consent_dropped_daily ORDER BY consumer_group")
    assert dropped == [(f"raw-{group}", "consent_withdrawn", 4), (f"stream-{group}", "consent_withdrawn", 4)]


def test_an_access_export_holds_the_persons_dead_letters_and_says_what_it_leaves_out(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    [person, other, _third] = make_people()
    produce_events(settings, [Event(str(uuid.uuid4()), person, "page_view", datetime.now(UTC), None, {"page": "/a"})])
    produce(
        settings,
        [
            (
                person.encode(),
                json.dumps({"user_id": person, "event_type": "refund", "note": "mail me at jo@example.org"}).encode(),
            ),
            (person.encode(), f'{{"user_id": "{person}", "event_type": "page_view", '.encode()),  # cut short: not JSON
            (other.encode(), json.dumps({"user_id": other, "event_type": "refund"}).encode()),
        ],
    )
    consume_all(settings, group, tmp_path)
    assert query(settings, "SELECT count(*) FROM dead_letter_events") == [(3,)]
    [(email,)] = query(settings, "SELECT email FROM users_pii WHERE user_id = %s", (person,))
    query(settings, "INSERT INTO privacy_requests (email, request_type) VALUES (%s, 'access')", (email,))
    assert run_command("gdpr.process_privacy_requests").returncode == 0
    [(path,)] = query(settings, "SELECT export_path FROM privacy_requests")
    document = json.loads(Path(str(path)).read_text(encoding="utf-8"))

    letters = document["dead_letters"]
    assert [letter["reason"] for letter in letters][1] == "not_json"
    parsed, text = letters
    assert parsed["payload"]["user_id"] == person and "jo@example.org" not in json.dumps(parsed)  # stored redacted
    assert person in text["payload_text"] and "not valid JSON" in text["note"]
    assert other not in json.dumps(document)
    assert any("Kafka" in line for line in document["not_included"])
    assert len(document["events"]) == 1

    # The erasure forgets the same letters, and where their messages are.
    erase(settings, person)
    assert query(
        settings, "SELECT count(*) FROM dead_letter_events WHERE payload LIKE %s OR kafka_offset IS NULL", (f"%{person}%",)
    ) == [(2,)]
    assert query(settings, "SELECT count(*) FROM dead_letter_events WHERE payload LIKE %s", (f"%{person}%",)) == [(0,)]
