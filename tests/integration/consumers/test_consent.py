"""Consent enforced by both consumers, whatever path an event took: what is stored in events_raw
is exactly what the streaming metrics counted, and what was dropped is counted per day and reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from core.config import Settings
from core.events import Event
from tests.helpers import (
    RAW,
    STREAMING,
    consume_all,
    expected_metrics,
    metrics_table,
    produce_events,
    query,
    run_command,
    start_service,
    wait_caught_up,
    wait_until,
)

pytestmark = pytest.mark.integration

GRANTED = str(uuid.UUID(int=1))
NEVER = str(uuid.UUID(int=2))
WITHDREW = str(uuid.UUID(int=3))


def _event(user: str, at: datetime, kind: str = "purchase") -> Event:
    amount = Decimal("12.34") if kind == "purchase" else None
    return Event(str(uuid.uuid4()), user, kind, at, amount, {"page": "/cart"})


def _ledger(settings: Settings, user: str, granted: bool, at: datetime, source: str = "sql") -> None:
    query(
        settings,
        "INSERT INTO consent_ledger (user_id, purpose, granted, effective_at, source) VALUES (%s, 'analytics', %s, %s, %s)",
        (user, granted, at, source),
    )


def _run_both(settings: Settings, group: str, tmp_path: Path, mode: str) -> None:
    consume_all(settings, group, tmp_path, {"CONSENT_MODE": mode})


def _scenario(settings: Settings, t0: datetime) -> tuple[list[Event], dict[str, list[Event]]]:
    """Events of three users around their consent changes, by what must become of them."""
    _ledger(settings, GRANTED, True, t0)
    _ledger(settings, WITHDREW, True, t0)
    _ledger(settings, WITHDREW, False, t0 + timedelta(hours=2))
    groups = {
        "before_grant": [_event(GRANTED, t0 - timedelta(minutes=5)), _event(WITHDREW, t0 - timedelta(seconds=1))],
        "granted": [
            _event(GRANTED, t0 + timedelta(minutes=m), k) for m, k in ((0, "page_view"), (30, "purchase"), (90, "add_to_cart"))
        ]
        + [_event(WITHDREW, t0 + timedelta(hours=1))],
        "never": [_event(NEVER, t0 + timedelta(minutes=m)) for m in (1, 2, 3)],
        "withdrawn": [_event(WITHDREW, t0 + timedelta(hours=2)), _event(WITHDREW, t0 + timedelta(hours=3), "page_view")],
    }
    events = [e for group in groups.values() for e in group]
    events.sort(key=lambda e: e.event_id)  # mixed order: the decision depends on event time, not arrival
    return events, groups


def _stored_ids(settings: Settings) -> set[str]:
    return {row[0] for row in query(settings, "SELECT event_id::text FROM events_raw")}


def _dropped(settings: Settings, group: str) -> dict[str, int]:
    rows = query(
        settings,
        "SELECT reason, sum(dropped_events)::int FROM consent_dropped_daily WHERE consumer_group = %s GROUP BY reason",
        (group,),
    )
    return {reason: n for reason, n in rows}


def test_required_mode_counts_only_events_with_consent_at_their_time(settings: Settings, group: str, tmp_path: Path) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    events, groups = _scenario(settings, t0)
    produce_events(settings, events)

    _run_both(settings, group, tmp_path, "required")

    assert _stored_ids(settings) == {e.event_id for e in groups["granted"]}
    assert metrics_table(settings, "metrics_streaming_daily") == expected_metrics(groups["granted"])
    expected_drops = {
        "no_consent": len(groups["before_grant"]) + len(groups["never"]),
        "consent_withdrawn": len(groups["withdrawn"]),
    }
    assert _dropped(settings, f"raw-{group}") == expected_drops
    assert _dropped(settings, f"stream-{group}") == expected_drops
    # The batch recompute over events_raw agrees with the streaming figures to the cent.
    for day in sorted({e.event_date for e in events}):
        assert run_command("batch.batch_metrics", day.isoformat()).returncode == 0
        compared = run_command("batch.compare_batch_vs_stream", day.isoformat())
        assert compared.returncode == 0, compared.stdout + compared.stderr
    assert metrics_table(settings, "metrics_batch_daily") == expected_metrics(groups["granted"])


def test_assumed_mode_counts_users_without_records_but_honours_withdrawals(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    events, groups = _scenario(settings, t0)
    produce_events(settings, events)

    _run_both(settings, group, tmp_path, "assumed")

    counted = groups["before_grant"] + groups["granted"] + groups["never"]
    assert _stored_ids(settings) == {e.event_id for e in counted}
    assert metrics_table(settings, "metrics_streaming_daily") == expected_metrics(counted)
    assert _dropped(settings, f"raw-{group}") == {"consent_withdrawn": len(groups["withdrawn"])}


def test_a_consent_recorded_while_the_consumers_run_applies_to_later_events(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    env = {"CONSENT_MODE": "required"}
    raw = start_service(RAW, f"raw-{group}", tmp_path, env)
    streaming = start_service(STREAMING, f"stream-{group}", tmp_path, env)
    try:
        early = [_event(NEVER, datetime.now(UTC) - timedelta(minutes=1)) for _ in range(3)]
        produce_events(settings, early)
        wait_caught_up(settings, f"raw-{group}")
        wait_caught_up(settings, f"stream-{group}")
        assert _stored_ids(settings) == set()

        [(granted_at,)] = query(
            settings,
            "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, 'analytics', true, 'sql')"
            " RETURNING effective_at",
            (NEVER,),
        )
        later = [_event(NEVER, granted_at + timedelta(milliseconds=n + 1)) for n in range(4)]
        produce_events(settings, later)
        wait_until(lambda: _stored_ids(settings) == {e.event_id for e in later}, what="the events after the grant")
        wait_caught_up(settings, f"stream-{group}")
    finally:
        assert raw.stop() == 0, raw.output()
        assert streaming.stop() == 0, streaming.output()
    assert metrics_table(settings, "metrics_streaming_daily") == expected_metrics(later)
    assert _dropped(settings, f"raw-{group}") == {"no_consent": 3}


def test_an_erasure_withdraws_consent_from_its_time_on(settings: Settings, group: str, tmp_path: Path) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (%s, 'ada@example.com', 'Ada L', 'Street 1')",
        (GRANTED,),
    )
    _ledger(settings, GRANTED, True, t0)
    query(settings, "INSERT INTO privacy_requests (email, request_type) VALUES ('ada@example.com', 'erasure')")
    processed = run_command("gdpr.process_privacy_requests")
    assert processed.returncode == 0, processed.stdout + processed.stderr
    [(erased_at,)] = query(
        settings,
        "SELECT effective_at FROM consent_ledger WHERE user_id = %s AND source = 'erasure' AND NOT granted",
        (GRANTED,),
    )

    late = _event(GRANTED, t0 + timedelta(minutes=10))  # from before the erasure, arriving after it
    after = _event(GRANTED, erased_at + timedelta(seconds=1))
    produce_events(settings, [late, after])
    _run_both(settings, group, tmp_path, "assumed")

    # Stored under a pseudonym, never the former id, and under a fresh event id with no Kafka
    # offset: nothing leads back to its message (sql/034).
    [(event_id, user_id, offset)] = query(settings, "SELECT event_id::text, user_id::text, kafka_offset FROM events_raw")
    assert event_id != late.event_id and user_id != GRANTED and offset is None
    assert _dropped(settings, f"raw-{group}") == {"consent_withdrawn": 1}
