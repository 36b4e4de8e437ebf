"""What an erasure leaves behind, through the real broker, consumers and processor: late events
of an erased person keep no personal data, no stored row leads back to the person's Kafka
messages, an erased person cannot consent again, and an access export holds their dead letters."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.config import Settings
from core.events import Event
from data_generators.generate_users import generated_user_id
from tests.helpers import consume_all, produce_events, query, run_command

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
