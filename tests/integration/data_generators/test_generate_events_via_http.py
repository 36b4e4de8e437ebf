"""generate_events --via-http: the command sends its events through an HTTP collector, counts what
the collector accepted, and stops with one line when the collector refuses or is not there.

The collector here is a small real HTTP server answering like ``python -m collector``; the
end-to-end test with the real collector lives with the collector's tests.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from core.config import Settings
from tests.helpers import query, run_command
from tests.unit.data_generators.fake_collector import (
    Answer,
    FakeCollector,
    accept_all,
    accepted,
    answer,
    broker_away,
    rejected,
    serving,
)

pytestmark = pytest.mark.integration

KEY = "wk_test_generator"


def users(settings: Settings, count: int = 10) -> set[str]:
    assert run_command("data_generators.generate_users", "--count", str(count)).returncode == 0
    return {str(u) for (u,) in query(settings, "SELECT user_id FROM users_public")}


def first_busy_then_accepting(number: int, batch: list[dict[str, Any]]) -> Answer:
    return broker_away(batch, retry_after=1) if number == 0 else accept_all(batch)


@pytest.mark.parametrize("processes", [1, 2])
def test_events_go_through_the_collector_and_are_counted_as_accepted(settings: Settings, processes: int) -> None:
    known = users(settings)
    with serving(FakeCollector(first_busy_then_accepting)) as collector:
        result = run_command(
            "data_generators.generate_events",
            *("--via-http", collector.url, "--key", KEY, "--count", "250", "--rate", "0", "--http-batch", "100"),
            *("--processes", str(processes)),
        )
    assert result.returncode == 0, result.stderr
    assert f"events: 250 accepted by the collector at {collector.url}, 0 rejected, 0 not delivered" in result.stdout
    # The 503 was waited out and its batch sent again with the same ids: 250 distinct events.
    ids = collector.event_ids()
    assert len(set(ids)) == 250 and len(ids) == 250 + len(collector.received[0].events)
    assert {e["user_id"] for r in collector.received for e in r.events} <= known
    assert all(len(r.events) <= 100 for r in collector.received)
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in collector.received)
    assert KEY not in result.stdout + result.stderr


def test_rejected_events_make_the_command_fail_with_the_reason(settings: Settings) -> None:
    users(settings)

    def reject_two(_number: int, batch: list[dict[str, Any]]) -> Answer:
        return answer(202, [accepted(e) for e in batch[:-2]] + [rejected("invalid_event")] * 2)

    with serving(FakeCollector(reject_two)) as collector:
        result = run_command("data_generators.generate_events", "--via-http", collector.url, "--key", KEY, "--count", "100")
    assert result.returncode == 1
    assert "events: 98 accepted by the collector" in result.stdout and "2 rejected, 0 not delivered" in result.stdout
    assert "invalid_event" in result.stdout


def test_a_wrong_key_stops_the_command_with_the_collectors_code_and_detail(settings: Settings) -> None:
    users(settings)
    refusal = Answer(401, {"error": "unknown_write_key", "detail": "this write key is not known"})
    with serving(FakeCollector(lambda _n, _b: refusal)) as collector:
        result = run_command("data_generators.generate_events", "--via-http", collector.url, "--key", KEY, "--count", "500")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: the collector at {collector.url} refused the events: 401 unknown_write_key: this write key is not known"
    )
    assert "Traceback" not in result.stderr and KEY not in result.stderr
    assert len(collector.received) <= 4, "a refused batch is not sent again"


def test_a_collector_that_is_not_there_is_a_one_line_error_at_start(settings: Settings) -> None:
    users(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_command(
        "data_generators.generate_events", "--via-http", f"http://127.0.0.1:{port}", "--key", KEY, "--count", "5"
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the collector at http://127.0.0.1:{port} cannot be reached")
    assert "python -m collector" in line
