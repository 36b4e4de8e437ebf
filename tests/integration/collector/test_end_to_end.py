"""Through the front door: the generator sends via the real collector, a consent withdrawal goes
through the collector too, and both consumers (CONSENT_MODE=required) store and count exactly the
events of users who consented at the event's time."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from core.config import Settings
from tests.helpers import consume_all, metrics_table, query, run_command
from tests.integration.collector.conftest import Collector

pytestmark = pytest.mark.integration


def test_generator_via_http_then_withdrawal_both_consumers_agree_with_the_ledger(
    settings: Settings, server_key: str, collector: Collector, group: str, tmp_path: Path
) -> None:
    # The generator and the withdrawal stand for back ends, from one address: a server key, which
    # has no per-client share of its rate (a web key's client may send 10 requests a second).
    users = run_command("data_generators.generate_users", "--count", "40", "--seed", "11", "--consent-share", "0.5")
    assert users.returncode == 0, users.stderr
    consenting = {row[0] for row in query(settings, "SELECT user_id::text FROM consent_ledger WHERE granted")}
    assert 0 < len(consenting) < 40

    sent = run_command(
        "data_generators.generate_events",
        "--rate",
        "0",
        "--count",
        "3000",
        "--seed",
        "4",
        "--via-http",
        collector.url,
        "--key",
        server_key,
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "3,000 accepted" in sent.stdout + sent.stderr

    # One consenting user withdraws through the collector; their events from then on are dropped.
    leaver = sorted(consenting)[0]
    change = {"user_id": leaver, "purpose": "analytics", "granted": False}
    answer = collector.post("/v1/consent", json.dumps(change).encode(), server_key)
    assert answer.status_code == 201, answer.text
    withdrawn_at = datetime.fromisoformat(answer.json()["effective_at"])
    later = run_command(
        "data_generators.generate_events",
        "--rate",
        "0",
        "--count",
        "1000",
        "--seed",
        "5",
        "--via-http",
        collector.url,
        "--key",
        server_key,
    )
    assert later.returncode == 0, later.stdout + later.stderr

    consume_all(settings, group, tmp_path, {"CONSENT_MODE": "required"})

    # What the ledger says must count, computed in SQL independently of the consumers.
    [(expected,)] = query(
        settings,
        "SELECT count(*) FROM events_raw WHERE coalesce(consent_at(user_id, 'analytics', event_timestamp), false)",
    )
    [(stored, distinct, users_stored)] = query(
        settings, "SELECT count(*), count(DISTINCT event_id), count(DISTINCT user_id) FROM events_raw"
    )
    [(dropped,)] = query(
        settings, "SELECT sum(dropped_events)::int FROM consent_dropped_daily WHERE consumer_group = %s", (f"raw-{group}",)
    )
    assert stored == distinct == expected
    assert stored + dropped == 4000
    assert {row[0] for row in query(settings, "SELECT DISTINCT user_id::text FROM events_raw")} <= consenting
    assert users_stored > 1
    [(leaver_late,)] = query(
        settings, "SELECT count(*) FROM events_raw WHERE user_id = %s AND event_timestamp >= %s", (leaver, withdrawn_at)
    )
    assert leaver_late == 0
    streaming_total = sum(count for count, _amount in metrics_table(settings, "metrics_streaming_daily").values())
    assert streaming_total == stored
    for day in sorted({row[0] for row in query(settings, "SELECT DISTINCT event_date FROM events_raw")}):
        assert run_command("batch.batch_metrics", day.isoformat()).returncode == 0
        compared = run_command("batch.compare_batch_vs_stream", day.isoformat())
        assert compared.returncode == 0, compared.stdout
