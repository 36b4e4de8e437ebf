"""The design document's interfaces, as other people's code uses them: its producer (kafka-python-ng,
JSON value serializer, no key, UUID user ids, ``amount: 0.0`` on every event), its way of
adding users, its data model's names and its own test (``tests/test_gdpr.py``)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaProducer

from core.config import Settings
from data_generators.events import EventFactory
from tests.helpers import (
    PROJECT_ROOT,
    consume_all,
    expected_metrics,
    metrics_table,
    produce_events,
    query,
    run_command,
)

pytestmark = pytest.mark.integration

BERLIN_SUMMER = timezone(timedelta(hours=2))


def add_users_as_the_design_does(settings: Settings, n: int, rng: random.Random) -> list[str]:
    """A UUID, a users_pii row, then a users_public row, per user (the design's generate_users)."""
    users = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    for i, user_id in enumerate(users):
        query(
            settings,
            "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (%s, %s, %s, %s)",
            (user_id, f"design.user.{i}@example.org", f"Design User {i}", f"Teststraße {i}, 10115 Berlin"),
        )
        query(
            settings,
            "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, 'DE', %s)",
            (user_id, datetime.now(UTC).date()),
        )
    return users


def design_event(rng: random.Random, users: list[str], now: datetime) -> dict[str, object]:
    """An event as the design's generator sends it: amount a JSON number on every event."""
    kind = rng.choices(["page_view", "add_to_cart", "purchase"], [70, 20, 10])[0]
    user = rng.choice(users)
    moment = now - timedelta(minutes=rng.randrange(0, 600))
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": user.upper() if rng.random() < 0.2 else user,  # any case; stored canonical
        "event_type": kind,
        "event_timestamp": (moment.astimezone(BERLIN_SUMMER) if rng.random() < 0.5 else moment).isoformat(),
        "amount": round(rng.uniform(5, 500), 2) if kind == "purchase" else rng.choice([0.0, 0, None]),
        "metadata": {"page": "/home"},
    }


def expected(events: list[dict[str, object]]) -> dict[tuple[date, str], tuple[int, Decimal]]:
    """What the metrics must say: a float amount counts as the digits it was written with."""
    out: dict[tuple[date, str], tuple[int, Decimal]] = {}
    for e in events:
        day = datetime.fromisoformat(str(e["event_timestamp"])).astimezone(UTC).date()
        count, total = out.get((day, str(e["event_type"])), (0, Decimal(0)))
        amount = Decimal(json.dumps(e["amount"])) if e["amount"] is not None else Decimal(0)
        out[(day, str(e["event_type"]))] = (count + 1, total + amount)
    return out


def test_a_producer_written_to_the_design_loses_nothing(settings: Settings, group: str, tmp_path: Path) -> None:
    """kafka-python-ng's KafkaProducer with a JSON value_serializer and no key, beside the
    platform's own generator: every valid event is stored once under its canonical UUID, zero
    amounts on page views are kept as sent and never count as revenue, and streaming equals
    batch equals what was sent. Malformed ones still go to dead letters with their reason."""
    rng = random.Random(12)
    users = add_users_as_the_design_does(settings, 20, rng)
    now = datetime.now(UTC)
    design = [design_event(rng, users, now) for _ in range(600)]
    invalid = [
        ({**design_event(rng, users, now), "event_type": "page_view", "amount": 3.5}, "unexpected_amount"),
        ({**design_event(rng, users, now), "user_id": "not-a-uuid"}, "invalid_user_id"),
        ({**design_event(rng, users, now), "user_id": users[0][:-1]}, "invalid_user_id"),
    ]
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, value_serializer=lambda v: json.dumps(v).encode("utf-8")
    )
    for event in design + [e for e, _reason in invalid]:
        producer.send(settings.kafka.topic, event)
    producer.flush()
    producer.close()
    own = [EventFactory(users, seed=3).make(now) for _ in range(400)]
    produce_events(settings, own)

    consume_all(settings, group, tmp_path)

    rows = {
        str(event_id): (str(user_id), amount)
        for event_id, user_id, amount in query(settings, "SELECT event_id, user_id, amount FROM events_raw")
    }
    assert len(rows) == len(design) + len(own)
    for e in design:
        user_id, amount = rows[str(e["event_id"])]
        assert user_id == str(e["user_id"]).lower()
        assert amount == (None if e["amount"] is None else Decimal(json.dumps(e["amount"])))
    assert {user for user, _amount in rows.values()} <= set(users)
    reasons = Counter(reason for (reason,) in query(settings, "SELECT reason FROM dead_letter_events"))
    assert reasons == Counter(reason for _event, reason in invalid)

    want = expected(design)
    for key, (count, total) in expected_metrics(own).items():
        have = want.get(key, (0, Decimal(0)))
        want[key] = (have[0] + count, have[1] + total)
    assert metrics_table(settings, "metrics_streaming_daily") == want
    for day in sorted({day for day, _kind in want}):
        assert run_command("batch.batch_metrics", day.isoformat()).returncode == 0
    assert metrics_table(settings, "metrics_batch_daily") == want
    revenue = sum((total for (_day, kind), (_count, total) in want.items() if kind != "purchase"), Decimal(0))
    assert revenue == 0


def test_the_designs_own_test_passes_against_the_running_stack(settings: Settings) -> None:
    """tests/test_gdpr.py as the design wrote it, in a child pytest pointed at this suite's stack
    (the environment the session set), which is the running stack for it."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gdpr.py"],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert query(settings, "SELECT status, processed_at IS NOT NULL FROM privacy_requests") == [("completed", True)]


def test_the_documented_columns_exist_with_their_types(settings: Settings) -> None:
    """Section 3 of the design: names and types, beside the platform's own columns."""
    columns = dict(
        ((table, column), kind)
        for table, column, kind in query(
            settings, "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'"
        )
    )
    documented: dict[str, dict[str, str | None]] = {
        "users_pii": {"user_id": "uuid", "email": "text", "full_name": "text", "address": "text", "created_at": None},
        "users_public": {"user_id": "uuid", "country": None, "signup_date": "date", "created_at": None},
        "events_raw": {
            "event_id": "uuid",
            "user_id": "uuid",
            "event_type": "text",
            "event_timestamp": None,
            "amount": "numeric",
            "metadata": "jsonb",
            "created_at": None,
        },
        "metrics_streaming_daily": {
            "event_date": "date",
            "event_type": "text",
            "total_events": "bigint",
            "total_amount": "numeric",
        },
        "metrics_batch_daily": {"event_date": "date", "event_type": "text", "total_events": "bigint", "total_amount": "numeric"},
        "privacy_requests": {"id": "bigint", "email": "text", "requested_at": None, "processed_at": None},
    }
    for table, wanted in documented.items():
        for column, kind in wanted.items():
            assert (table, column) in columns, f"{table}.{column}"
            if kind is not None:
                assert columns[(table, column)] == kind, f"{table}.{column}"
    for stamp in ("created_at", "requested_at", "processed_at", "event_timestamp"):
        assert {kind for (_t, c), kind in columns.items() if c == stamp} == {"timestamp with time zone"}
