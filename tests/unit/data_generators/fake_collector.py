"""A small real HTTP server that answers ``POST /v1/events`` the way the collector does.

Tests script its answers (202, 422, 503 with Retry-After, 429, 401 ...) per request and read
back what arrived: the path, the headers and the events of every request, and how many requests
were in flight at once. Real HTTP on a free port, so the client under test is not mocked.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One scripted answer: status, JSON body, headers (e.g. Retry-After)."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    events: list[dict[str, Any]]
    at: float


def accepted(event: dict[str, Any]) -> dict[str, Any]:
    """One event's result when it is in Kafka (collector.intake.results)."""
    return {"status": "accepted", "event_id": event["event_id"]}


def rejected(reason: str, detail: str = "") -> dict[str, Any]:
    """One event's result when it is not: invalid, or not acknowledged by the broker."""
    return {"status": "rejected", "reason": reason, "detail": detail or reason}


def answer(status: int, results: list[dict[str, Any]], **extra: Any) -> Answer:
    """An answer to POST /v1/events with its counts and one result per event."""
    taken = sum(r["status"] == "accepted" for r in results)
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else {}
    return Answer(status, {"accepted": taken, "rejected": len(results) - taken, "results": results, **extra}, headers)


def accept_all(events: list[dict[str, Any]]) -> Answer:
    """What the collector answers when every event is valid and in Kafka."""
    return answer(202, [accepted(e) for e in events])


def broker_away(events: list[dict[str, Any]], retry_after: float = 1) -> Answer:
    """What the collector answers when the broker acknowledged none of the events."""
    results = [rejected("broker_unavailable", "the broker did not acknowledge this event") for _ in events]
    return answer(
        503, results, error="broker_unavailable", detail="send those again after Retry-After seconds", retry_after=retry_after
    )


# Given the request's number (0, 1, ...) and its events, the answer.
Script = Callable[[int, list[dict[str, Any]]], Answer]


class FakeCollector:
    """The server's state: the script, what was received, the peak of concurrent requests."""

    def __init__(self, script: Script, delay_s: float = 0.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.connections: set[tuple[str, int]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def event_ids(self) -> list[str]:
        return [e["event_id"] for r in self.received for e in r.events]

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.connections.add(handler.client_address[:2])
        try:
            length = int(handler.headers.get("Content-Length", "0"))
            events = json.loads(handler.rfile.read(length))
            with self.lock:
                number = len(self.received)
                self.received.append(Received(handler.path, dict(handler.headers.items()), events, time.monotonic()))
            time.sleep(self.delay_s)
            answer = self.script(number, events)
        finally:
            with self.lock:
                self.in_flight -= 1
        payload = json.dumps(answer.body or {}).encode()
        handler.send_response(answer.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)


def _handler(collector: FakeCollector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the collector

        def do_POST(self) -> None:
            collector.handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    """Remembers its connections, so that stopping it also drops the kept-alive ones: a client
    then meets a collector that is gone, not one still answering on an old connection."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.connections: list[socket.socket] = []

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        self.connections.append(connection)
        return connection, address

    def drop_connections(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


@contextmanager
def serving(collector: FakeCollector, port: int = 0) -> Iterator[FakeCollector]:
    """Serve ``collector`` on 127.0.0.1 (a free port unless ``port`` is given) until the block ends."""
    server = _Server(("127.0.0.1", port), _handler(collector))
    collector.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
        server.drop_connections()
        thread.join()
