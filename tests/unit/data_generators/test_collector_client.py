"""The generator's HTTP path: batches, keep-alive and concurrency, and what it does with each of
the collector's answers (202, 422, 503 and 429 with Retry-After, refusals, a collector gone)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import ServiceUnavailable
from data_generators import generate_events
from data_generators.collector_client import (
    CollectorRefused,
    CollectorSender,
    CollectorTarget,
    check_url,
    ensure_reachable,
)
from data_generators.events import EventFactory
from tests.helpers import wait_until
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

KEY = "wk_test_" + uuid.uuid4().hex
USERS = [str(uuid.UUID(int=n, version=4)) for n in range(1, 21)]
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def values(n: int, seed: int = 1) -> list[bytes]:
    """``n`` events exactly as the Kafka path produces them (the JSON message values)."""
    return [m["value"] for m in EventFactory(USERS, seed).messages(n, NOW)]


def target(collector: FakeCollector, batch: int = 100, concurrency: int = 4) -> CollectorTarget:
    return CollectorTarget(url=collector.url, key=KEY, batch_size=batch, concurrency=concurrency)


def send(sender: CollectorSender, events: list[bytes], timeout: float = 30) -> None:
    assert sender.add(events, threading.Event())
    sender.close(timeout)


def test_events_go_as_json_arrays_of_the_batch_size_with_the_key_and_are_counted() -> None:
    events = values(250)
    with serving(FakeCollector(lambda _n, batch: accept_all(batch))) as collector:
        sender = CollectorSender(target(collector))
        send(sender, events)
    assert sorted(len(r.events) for r in collector.received) == [50, 100, 100]
    assert all(r.path == "/v1/events" for r in collector.received)
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in collector.received)
    assert all(r.headers["Content-Type"] == "application/json" for r in collector.received)
    # The very JSON the Kafka path produces, every event once.
    assert sorted(json.dumps(e, sort_keys=True) for r in collector.received for e in r.events) == sorted(
        json.dumps(json.loads(v), sort_keys=True) for v in events
    )
    assert (sender.accepted, sender.rejected, sender.undelivered) == (250, 0, 0)


def test_a_few_requests_are_in_flight_over_kept_alive_connections() -> None:
    with serving(FakeCollector(lambda _n, batch: accept_all(batch), delay_s=0.05)) as collector:
        sender = CollectorSender(target(collector, batch=10, concurrency=4))
        send(sender, values(400))
    assert len(collector.received) == 40
    assert 2 <= collector.peak_in_flight <= 4
    # Forty requests over at most one connection per sender thread: keep-alive.
    assert len(collector.connections) <= 4
    assert sender.accepted == 400


def test_a_503_is_waited_out_for_its_retry_after_and_the_same_batch_sent_again() -> None:
    def script(number: int, batch: list[dict[str, Any]]) -> Answer:
        return broker_away(batch, retry_after=1) if number == 0 else accept_all(batch)

    with serving(FakeCollector(script)) as collector:
        sender = CollectorSender(target(collector, batch=100, concurrency=1))
        send(sender, values(100))
    first, second = collector.received
    assert [e["event_id"] for e in second.events] == [e["event_id"] for e in first.events]
    assert second.events == first.events
    assert second.at - first.at >= 1.0
    assert (sender.accepted, sender.rejected, sender.undelivered) == (100, 0, 0)


def test_after_a_503_only_the_events_the_broker_did_not_acknowledge_are_sent_again() -> None:
    """The streaming metrics count every message: an event in Kafka once must not go twice."""

    def script(number: int, batch: list[dict[str, Any]]) -> Answer:
        if number > 0:
            return accept_all(batch)
        results = [accepted(e) for e in batch[:60]] + [rejected("invalid_event")]
        results += [rejected("broker_unavailable") for _ in batch[61:]]
        return answer(503, results, error="broker_unavailable", detail="39 events were not stored", retry_after=0)

    with serving(FakeCollector(script)) as collector:
        sender = CollectorSender(target(collector, batch=100, concurrency=1))
        send(sender, values(100))
    first, second = collector.received
    assert second.events == first.events[61:]  # the same events, the same ids
    assert len(set(collector.event_ids())) == 100
    assert (sender.accepted, sender.rejected, sender.undelivered) == (99, 1, 0)
    assert "invalid_event" in sender.last_error


def test_a_503_without_a_result_per_event_sends_the_whole_batch_again() -> None:
    """A 503 from a proxy in front of the collector says nothing about single events."""

    def script(number: int, batch: list[dict[str, Any]]) -> Answer:
        return Answer(503, None, {"Retry-After": "0"}) if number == 0 else accept_all(batch)

    with serving(FakeCollector(script)) as collector:
        sender = CollectorSender(target(collector, batch=50, concurrency=1))
        send(sender, values(50))
    first, second = collector.received
    assert second.events == first.events and sender.accepted == 50


def test_a_429_is_waited_out_and_the_batch_sent_again() -> None:
    def script(number: int, batch: list[dict[str, Any]]) -> Answer:
        if number < 2:
            return Answer(429, {"error": "rate_limited", "detail": "10 requests/s"}, {"Retry-After": "0"})
        return accept_all(batch)

    with serving(FakeCollector(script)) as collector:
        sender = CollectorSender(target(collector, concurrency=1))
        send(sender, values(30))
    assert len(collector.received) == 3
    assert collector.event_ids() == [e["event_id"] for e in collector.received[0].events] * 3
    assert sender.accepted == 30


def test_rejected_events_are_counted_with_the_reason_and_not_sent_again() -> None:
    def script(number: int, batch: list[dict[str, Any]]) -> Answer:
        if number == 0:
            return answer(202, [accepted(e) for e in batch[:-2]] + [rejected("invalid_event")] * 2)
        return answer(422, [rejected("not_json")] * len(batch), error="no_valid_event", detail="every event was rejected")

    with serving(FakeCollector(script)) as collector:
        sender = CollectorSender(target(collector, batch=10, concurrency=1))
        send(sender, values(20))
    assert len(collector.received) == 2
    assert (sender.accepted, sender.rejected, sender.undelivered) == (8, 12, 0)
    assert "rejected all 10 events (not_json)" in sender.last_error


@pytest.mark.parametrize(
    ("status", "code", "detail"),
    [
        (401, "unknown_write_key", "this write key is not known"),
        (403, "origin_not_allowed", "this key does not allow the origin"),
        (413, "too_many_events", "send at most 1000 per request"),
        (415, "unsupported_media_type", "send application/json"),
        (400, "malformed_json", "the body is not valid JSON"),
    ],
)
def test_a_refusal_resending_cannot_fix_stops_with_the_code_and_detail(status: int, code: str, detail: str) -> None:
    # As the generator uses it: the refusal comes from add or from close, whichever is next.
    with (
        serving(FakeCollector(lambda _n, _b: Answer(status, {"error": code, "detail": detail}))) as collector,
        pytest.raises(CollectorRefused) as refused,
        CollectorSender(target(collector, batch=10, concurrency=2)) as sender,
    ):
        send(sender, values(40))
    message = str(refused.value)
    assert f"{status} {code}: {detail}" in message and "\n" not in message
    assert KEY not in message
    # Not sent again: the other sender stops too, and what was not taken is undelivered.
    assert len(collector.received) <= 2
    assert sender.accepted == 0 and sender.undelivered == 40


def test_the_first_refusal_is_raised_by_the_next_add() -> None:
    with serving(
        FakeCollector(lambda _n, _b: Answer(401, {"error": "unknown_write_key", "detail": "this write key is not known"}))
    ) as c:
        sender = CollectorSender(target(c, batch=10, concurrency=1))
        stop = threading.Event()
        with pytest.raises(CollectorRefused, match="401 unknown_write_key"):
            for _ in range(50):
                sender.add(values(10), stop)
                time.sleep(0.02)
        sender.close(5, raise_failure=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_collector_that_is_not_there_is_a_one_line_error_at_start() -> None:
    nowhere = CollectorTarget(url=f"http://127.0.0.1:{free_port()}", key=KEY)
    with pytest.raises(ServiceUnavailable) as error:
        ensure_reachable(nowhere)
    assert "cannot be reached" in str(error.value) and "python -m collector" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_collector_lost_mid_run_is_retried_with_backoff_until_it_is_back(caplog: pytest.LogCaptureFixture) -> None:
    collector = FakeCollector(lambda _n, batch: accept_all(batch))
    with serving(collector):
        sender = CollectorSender(target(collector, batch=10, concurrency=1))
        assert sender.add(values(10, seed=1), threading.Event())
        wait_until(lambda: sender.accepted == 10, timeout=10, interval=0.01, what="the first batch to be taken")
    port = collector.port
    with caplog.at_level(logging.WARNING, logger="data_generators.collector_client"):
        assert sender.add(values(10, seed=2), threading.Event())  # the collector is gone
        # Back only once the sender has failed and retried after its backoff.
        wait_until(lambda: "(attempt 2)" in caplog.text, timeout=10, interval=0.01, what="a retry after the backoff")
        with serving(collector, port=port):
            sender.close(30)
    assert (sender.accepted, sender.undelivered) == (20, 0)
    assert "cannot reach the collector" in caplog.text and "(attempt 2)" in caplog.text


def test_what_the_collector_never_took_by_the_end_is_undelivered() -> None:
    with serving(FakeCollector(lambda _n, batch: broker_away(batch, retry_after=30))) as collector:
        sender = CollectorSender(target(collector, batch=10, concurrency=2))
        started = time.monotonic()
        send(sender, values(25), timeout=0.5)
    assert time.monotonic() - started < 10
    assert (sender.accepted, sender.rejected, sender.undelivered) == (0, 0, 25)


def test_a_batch_the_collector_does_not_take_for_too_long_stops_the_run() -> None:
    with serving(FakeCollector(lambda _n, batch: broker_away(batch, retry_after=0.1))) as collector:
        sender = CollectorSender(target(collector, batch=10, concurrency=1), give_up_s=0.5)
        with pytest.raises(ServiceUnavailable, match=r"has not taken a batch for 0\.5 s"):
            send(sender, values(10))
    assert len(collector.received) >= 3


def test_a_full_sender_gives_way_to_a_stop_and_keeps_the_events_for_the_end() -> None:
    with serving(FakeCollector(lambda _n, batch: accept_all(batch), delay_s=0.5)) as collector:
        sender = CollectorSender(target(collector, batch=10, concurrency=1))
        stop = threading.Event()
        assert sender.add(values(10, seed=1), stop)  # takes the only slot
        stop.set()
        assert not sender.add(values(25, seed=2), stop)  # no room, and asked to stop
        assert sender.in_flight == 35
        sender.close(30)
    assert sender.accepted == 35
    assert [len(r.events) for r in collector.received] == [10, 10, 10, 5], "still batches of at most 10"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8000", None),
        ("https://collector.example.org/", None),
        ("ftp://127.0.0.1", "http:// or https://"),
        ("127.0.0.1:8000", "http:// or https://"),
        ("http://127.0.0.1:8000/?x=1", "without ?query"),
    ],
)
def test_the_collector_url_is_checked(url: str, problem: str | None) -> None:
    found = check_url(url)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--key", KEY], "--key is the collector's write key: give it with --via-http URL"),
        (["--via-http", "http://127.0.0.1:8000"], "--via-http needs --key KEY"),
        (["--via-http", "http://127.0.0.1:8000", "--key", "two words"], "--via-http needs --key KEY"),
        (
            ["--via-http", "http://127.0.0.1:8000", "--key", KEY, "--http-batch", "1001"],
            "--http-batch must be between 1 and 1000",
        ),
        (["--via-http", "http://127.0.0.1:8000", "--key", KEY, "--http-batch", "0"], "--http-batch must be between 1 and 1000"),
        (["--via-http", "localhost:8000", "--key", KEY], "--via-http must be an http:// or https:// URL"),
    ],
)
def test_http_options_that_do_not_go_together_are_refused_before_anything_runs(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_status:
        generate_events.main(arguments)
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert message in error and KEY not in error
