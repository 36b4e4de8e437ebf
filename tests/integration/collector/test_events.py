"""POST /v1/events against the real server, broker and database: what is accepted is in Kafka as
sent, each event gets its own result, and every documented error status is JSON."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest

from core import kafka
from core.config import Settings
from tests.helpers import RAW, query, start_service, wait_caught_up, wait_until
from tests.integration.collector.conftest import (
    ORIGIN,
    Collector,
    assert_error,
    create_key,
    event,
    start_collector,
    wait_for_status,
)

pytestmark = pytest.mark.integration


def topic_messages(settings: Settings, count: int, timeout: float = 30) -> list[tuple[bytes, bytes]]:
    """(key, value) of the first ``count`` messages of the test's topic."""
    probe = kafka.consumer(settings.kafka, f"probe-{uuid.uuid4().hex[:8]}")
    probe.subscribe([settings.kafka.topic])
    found: list[tuple[bytes, bytes]] = []
    try:
        while len(found) < count:
            batch = probe.consume(1000, 0.5)
            found += [(m.key(), m.value()) for m in batch if m.error() is None]  # type: ignore[misc]
            assert timeout > 0, f"read {len(found)} of {count} messages"
            timeout -= 0.5
    finally:
        probe.close()
    return found


def test_accepted_events_are_in_kafka_exactly_as_sent_keyed_by_user(
    collector: Collector, write_key: str, settings: Settings
) -> None:
    good = [event(), event(user_id=42, event_type="purchase", amount="19.99"), event()]
    # Spacing and key order as a client wrote them: the collector must not re-encode.
    raw = [json.dumps(e, indent=2, sort_keys=True).encode() for e in good]
    body = b"[" + raw[0] + b", " + raw[1] + b',{"event_id": "nope"}, 17 ,' + raw[2] + b"]"

    response = collector.post("/v1/events", body, write_key)

    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (3, 2)
    assert [r["status"] for r in result["results"]] == ["accepted", "accepted", "rejected", "rejected", "accepted"]
    assert [r["event_id"] for r in result["results"] if r["status"] == "accepted"] == [e["event_id"] for e in good]
    assert result["results"][2] == {"status": "rejected", "reason": "missing_field", "detail": "user_id"}
    assert result["results"][3]["reason"] == "not_an_object"
    stored = topic_messages(settings, 3)
    assert sorted(value for _, value in stored) == sorted(raw)
    keys = {value: key for key, value in stored}
    assert keys[raw[0]] == good[0]["user_id"].encode()
    assert keys[raw[1]] == b"00000000-0000-0000-0000-00000000002a"  # a numeric id's UUID, as consumers store it


def test_one_event_object_and_ndjson_are_accepted_too(collector: Collector, write_key: str, settings: Settings) -> None:
    single = event()
    one = collector.post("/v1/events", json.dumps(single).encode(), write_key)
    assert one.status_code == 202
    assert one.json() == {"accepted": 1, "rejected": 0, "results": [{"status": "accepted", "event_id": single["event_id"]}]}

    lines = [event(), event()]
    body = (json.dumps(lines[0]) + "\r\n\nnot json\n" + json.dumps(lines[1]) + "\n").encode()
    ndjson = collector.post("/v1/events", body, write_key, content_type="application/x-ndjson")
    assert ndjson.status_code == 202, ndjson.text
    assert [r["status"] for r in ndjson.json()["results"]] == ["accepted", "rejected", "accepted"]
    assert ndjson.json()["results"][1]["reason"] == "not_json"
    assert len(topic_messages(settings, 3)) == 3


def test_a_request_whose_every_event_is_invalid_is_422_with_the_same_results(collector: Collector, write_key: str) -> None:
    response = collector.post("/v1/events", json.dumps([event(event_type="refund"), {"x": 1}]).encode(), write_key)
    assert_error(response, 422, "no_valid_event")
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert [r["reason"] for r in body["results"]] == ["unknown_event_type", "missing_field"]


def test_bodies_that_are_not_events_are_400(collector: Collector, write_key: str) -> None:
    assert_error(collector.post("/v1/events", b'[{"a": 1},', write_key), 400, "malformed_json")
    assert_error(collector.post("/v1/events", b"", write_key), 400, "empty_body")
    assert_error(collector.post("/v1/events", b'"hello"', write_key), 400, "not_an_event")
    assert_error(collector.post("/v1/events", b"[]", write_key), 400, "no_events")
    assert_error(collector.post("/v1/events", b"[" * 2000 + b"]" * 2000, write_key), 400, "too_deep")
    # One event nested far too deep is that event's fault: rejected on its own, never a 500.
    deep = event()
    deep["metadata"] = {"x": "PLACEHOLDER"}
    body = json.dumps(deep).encode().replace(b'"PLACEHOLDER"', b"[" * 3000 + b"]" * 3000)
    answer = collector.post("/v1/events", body, write_key)
    assert answer.status_code == 422, answer.text
    assert answer.json()["results"][0]["reason"] == "too_deep"


def test_a_number_out_of_range_rejects_its_event_only_never_the_request(
    collector: Collector, write_key: str, settings: Settings
) -> None:
    """1e-99999999999999999999 once failed the whole request with a 500, and every retry alike."""
    good = [event(), event()]
    extremes = [b"1e-99999999999999999999", b"1e99999999999999999999", b"-1e400", b"0E-5000", b"1" * 5000, b"0." + b"1" * 400]
    bad = [json.dumps(event(metadata={"x": "N"})).encode().replace(b'"N"', n) for n in extremes]
    bad.append(json.dumps(event(event_type="purchase", amount="N")).encode().replace(b'"N"', extremes[0]))
    body = b"[" + b",".join([json.dumps(good[0]).encode(), *bad, json.dumps(good[1]).encode()]) + b"]"

    response = collector.post("/v1/events", body, write_key)

    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, len(bad))
    assert [r.get("reason") for r in result["results"][1:-1]] == ["invalid_number"] * len(bad)
    assert sorted(json.loads(value)["event_id"] for _, value in topic_messages(settings, 2)) == sorted(
        e["event_id"] for e in good
    )
    # NaN and Infinity are not JSON: the array cannot be split, a 400 for the body, never a 500.
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        broken = json.dumps([event(metadata={"x": "N"})]).encode().replace(b'"N"', token)
        assert_error(collector.post("/v1/events", broken, write_key), 400, "malformed_json")
    only_bad = collector.post("/v1/events", bad[0], write_key)
    assert_error(only_bad, 422, "no_valid_event")
    assert only_bad.json()["results"][0]["reason"] == "invalid_number"


def test_too_large_is_413_by_content_length_by_chunked_body_and_by_event_count(
    collector: Collector, write_key: str, settings: Settings
) -> None:
    limit = settings.collector.max_body_bytes
    assert_error(collector.post("/v1/events", b" " * (limit + 1), write_key), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the collector must stop reading by itself
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    chunked = collector.http.post(
        "/v1/events", content=chunks(), headers={"Authorization": f"Bearer {write_key}", "Content-Type": "application/json"}
    )
    assert_error(chunked, 413, "body_too_large")

    many = json.dumps([{}] * (settings.collector.max_events + 1)).encode()
    assert_error(collector.post("/v1/events", many, write_key), 413, "too_many_events")


def test_a_wrong_content_type_is_415(collector: Collector, write_key: str) -> None:
    assert_error(
        collector.post("/v1/events", json.dumps(event()).encode(), write_key, content_type="text/plain"),
        415,
        "unsupported_media_type",
    )
    assert_error(collector.post("/v1/events", b"{}", write_key, content_type=""), 415, "unsupported_media_type")


def test_a_missing_or_unknown_key_is_401_and_x_write_key_works(collector: Collector, write_key: str) -> None:
    body = json.dumps(event()).encode()
    assert_error(collector.post("/v1/events", body, None), 401, "missing_write_key")
    assert_error(collector.post("/v1/events", body, "ck_" + "x" * 43), 401, "unknown_write_key")
    by_header = collector.post("/v1/events", body, None, X_Write_Key=write_key)
    assert by_header.status_code == 202


def test_a_browser_origin_the_key_does_not_allow_is_403(collector: Collector, write_key: str) -> None:
    body = json.dumps(event()).encode()
    assert_error(collector.post("/v1/events", body, write_key, Origin="https://evil.example"), 403, "origin_not_allowed")
    allowed = collector.post("/v1/events", body, write_key, Origin=ORIGIN)
    assert allowed.status_code == 202
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["vary"] == "Origin"
    # Server to server: no Origin header, no CORS headers.
    plain = collector.post("/v1/events", json.dumps(event()).encode(), write_key)
    assert plain.status_code == 202 and "access-control-allow-origin" not in plain.headers


def test_unknown_paths_are_404_and_wrong_methods_405(collector: Collector) -> None:
    assert_error(collector.http.get("/v1/nothing"), 404, "not_found")
    assert_error(collector.http.get("/v1/events"), 405, "method_not_allowed")
    assert_error(collector.http.put("/v1/consent"), 405, "method_not_allowed")
    assert_error(collector.http.post("/healthz"), 405, "method_not_allowed")


def test_health_and_readiness(collector: Collector) -> None:
    assert collector.http.get("/healthz").json() == {"status": "ok"}
    ready = collector.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "broker": "ok", "database": "ok"}


def test_over_the_keys_rate_is_429_with_retry_after(collector: Collector, write_key: str) -> None:
    slow = create_key("slow", "--rate", "1")
    body = json.dumps(event()).encode()
    # 401 until the collector has reloaded its keys; the first 202 takes the bucket's one token.
    wait_for_status(lambda: collector.post("/v1/events", body, slow), 202)
    limited = collector.post("/v1/events", body, slow)
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) == 1
    assert collector.post("/v1/events", body, write_key).status_code == 202  # other keys are not affected


def test_one_client_cannot_spend_a_public_keys_whole_rate(settings: Settings, tmp_path: Path) -> None:
    """One bucket per key once let a script lock real browsers out (8 of 10 got 429): now each
    client (here each loopback address) has its share, COLLECTOR_CLIENT_RATE_PER_S (10)."""
    public = create_key("public", "--rate", "40", "--origin", ORIGIN)
    collector = start_collector(tmp_path, env={"COLLECTOR_CLIENT_RATE_PER_S": "10"})
    try:
        share_of_the_rate(collector, public)
    finally:
        assert collector.stop() == 0


def test_a_server_key_is_not_held_to_one_clients_share(collector: Collector) -> None:
    """The share applies to keys meant for browsers only: a back-end producer with a server key
    (no origins; the demo's generator) sends from one address at its key's whole rate."""
    server = create_key("backend", "--rate", "40")
    body = json.dumps(event()).encode()
    wait_for_status(lambda: collector.post("/v1/events", body, server), 202)  # the key is loaded
    answers = [collector.post("/v1/events", body, server).status_code for _ in range(30)]
    assert answers == [202] * 30, answers  # the share (10) refused from the 10th


def share_of_the_rate(collector: Collector, public: str) -> None:
    body = json.dumps(event()).encode()
    wait_for_status(lambda: collector.post("/v1/events", body, public), 202)  # the key is loaded
    for _ in range(400):  # the script sends as fast as it can, until it is refused
        limited = collector.post("/v1/events", body, public)
        if limited.status_code == 429:
            break

    browsers = []
    for i in range(2, 12):
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{i}")
        with httpx.Client(base_url=collector.url, transport=transport, timeout=30) as browser:
            browsers.append(
                browser.post(
                    "/v1/events", content=body, headers={"Authorization": f"Bearer {public}", "Content-Type": "application/json"}
                )
            )
    assert [b.status_code for b in browsers] == [202] * 10, [b.text for b in browsers]
    assert_error(limited, 429, "rate_limited")
    assert "one client may send 10 requests a second" in limited.json()["detail"]
    assert not any(f"127.0.0.{i}" in collector.output() for i in range(2, 12))  # no client address is logged


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_lets_the_request_in_flight_finish(settings: Settings, write_key: str, tmp_path: Path, stop: int) -> None:
    """The request is in flight for sure when the stop comes: the application has started to
    read its body (the server answered ``100 Continue``), and the body is sent only once the
    server has stopped listening and waits for it. It is answered in full, then the collector exits 0."""
    running = start_collector(tmp_path)
    body = json.dumps([event() for _ in range(settings.collector.max_events)]).encode()
    address = urlsplit(running.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as conn:
        conn.sendall(
            f"POST /v1/events HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {write_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += conn.recv(1)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        running.process.send_signal(stop)
        # uvicorn's line once it stopped listening and waits for the requests in flight.
        wait_until(
            lambda: "Waiting for connections to close" in running.output(), timeout=30, what="the collector to wait for us"
        )
        conn.sendall(body)
        answer = http.client.HTTPResponse(conn)
        answer.begin()
        assert answer.status == 202, answer.read()
        assert json.loads(answer.read())["accepted"] == settings.collector.max_events
    assert running.process.wait(30) == 0, running.output()


def test_every_event_of_a_202_survives_a_kill_9_and_is_stored_once(
    settings: Settings, write_key: str, group: str, tmp_path: Path
) -> None:
    running = start_collector(tmp_path)
    batch = [event() for _ in range(900)] + [event(event_type="bogus") for _ in range(100)]
    response = running.post("/v1/events", msgspec.json.encode(batch), write_key)
    running.process.kill()  # SIGKILL the moment the 202 arrived: no flush, no goodbye
    running.process.wait(10)
    running.http.close()  # its connection to the killed server (else an unclosed socket at exit)
    assert response.status_code == 202, response.text
    accepted = {r["event_id"] for r in response.json()["results"] if r["status"] == "accepted"}
    assert len(accepted) == 900

    consumer = start_service(RAW, group, tmp_path)
    try:
        wait_caught_up(settings, group)
    finally:
        assert consumer.stop() == 0, consumer.output()
    [(total, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    assert total == distinct == len(accepted)
    assert {row[0] for row in query(settings, "SELECT event_id::text FROM events_raw")} == accepted
