"""Amounts at the limit: a day's totals never overflow, and an event above the maximum per event
is a dead letter, in both paths and on every later night."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from core.config import Settings
from tests.helpers import (
    consume_all,
    expected_metrics,
    known_events,
    metrics_table,
    produce_events,
    query,
    run_command,
)

pytestmark = pytest.mark.integration

LARGEST = Decimal("9999999999.99")  # what events_raw.amount holds, the highest MAX_EVENT_AMOUNT


def test_eleven_thousand_purchases_of_the_largest_amount_are_counted_in_both_paths(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    """11 requests of 1,000 purchases of 9,999,999,999.99 once overflowed NUMERIC(16, 2): the
    streaming consumer stopped counting the day's purchases and the nightly batch job failed on it
    every night after."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    ordinary = known_events(500, seed=61, days=[yesterday])
    huge = [
        msgspec.structs.replace(e, event_type="purchase", amount=LARGEST) for e in known_events(11_000, seed=67, days=[yesterday])
    ]
    produce_events(settings, ordinary + huge)

    logs = consume_all(settings, group, tmp_path, {"MAX_EVENT_AMOUNT": str(LARGEST)})

    expected = expected_metrics(ordinary + huge)
    assert expected[(yesterday, "purchase")][1] > Decimal("99999999999999.99")  # beyond NUMERIC(16, 2)
    assert metrics_table(settings, "metrics_streaming_daily") == expected
    assert query(settings, "SELECT count(*) FROM dead_letter_events") == [(0,)]
    assert "Traceback" not in logs
    for _night in range(2):
        nightly = run_command("batch.batch_metrics", "--changed")
        assert nightly.returncode == 0, nightly.stderr
        assert "Traceback" not in nightly.stderr
    assert metrics_table(settings, "metrics_batch_daily") == expected
    compared = run_command(
        "batch.compare_batch_vs_stream", str(yesterday), "--raw-group", f"raw-{group}", "--streaming-group", f"stream-{group}"
    )
    assert compared.returncode == 0, compared.stdout + compared.stderr


def test_an_event_above_the_maximum_amount_is_a_dead_letter_and_counts_nowhere(
    settings: Settings, group: str, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    ordinary = known_events(300, seed=71, days=[today])
    above = [
        msgspec.structs.replace(e, event_type="purchase", amount=Decimal("1000000.01"))
        for e in known_events(3, seed=73, days=[today])
    ]
    produce_events(settings, ordinary + above)

    consume_all(settings, group, tmp_path)  # the default maximum, 1,000,000.00

    assert metrics_table(settings, "metrics_streaming_daily") == expected_metrics(ordinary)
    assert query(settings, "SELECT count(*) FROM events_raw") == [(len(ordinary),)]
    assert query(settings, "SELECT reason, count(*) FROM dead_letter_events GROUP BY 1") == [("amount_out_of_range", 3)]
