"""The HTTP services' front doors, with the real servers: a slow client (a header line or a body
byte at a time, from a raw socket) is answered 408 and closed once its deadline passes, and the
console and the dashboard answer only the hosts they are configured for (DNS rebinding).

Before these, uvicorn had a keep-alive timeout only: a client sending a header line every 5 s held
a connection of the collector or the privacy API past 70 s, and the console and the dashboard
answered any Host header."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.config import Settings
from tests.helpers import HttpService, start_http_service
from tests.integration.collector.conftest import Collector, create_key, event, start_collector, wait_for_status
from tests.integration.console.conftest import start_console
from tests.integration.dashboard.conftest import start_dashboard

# Small deadlines, so that a test sees them pass; the server's closing is polled for.
DEADLINES = {"HTTP_HEADER_TIMEOUT_S": "0.5", "HTTP_BODY_TIMEOUT_S": "0.5"}
# How long a test waits for the server to close a dripping connection before failing.
PATIENCE_S = 20.0
# A drip every this many seconds: well inside the deadline, so only the deadline can end it.
DRIP_S = 0.1


def drip_until_closed(url: str, first: bytes, drip: bytes) -> bytes:
    """Send ``first``, then ``drip`` every DRIP_S, until the server closes the connection; return
    what it answered. Fails when it is still open after PATIENCE_S."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    received = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.settimeout(DRIP_S)
        sock.sendall(first)
        give_up = time.monotonic() + PATIENCE_S
        while time.monotonic() < give_up:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(drip)
                except (BrokenPipeError, ConnectionResetError):
                    return received
                continue
            except ConnectionResetError:
                return received
            if not data:
                return received
            received += data
    raise AssertionError(f"the server kept a dripping connection open for {PATIENCE_S} s; it answered {received!r}")


def assert_408(answer: bytes) -> dict[str, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in head.lower(), answer
    reason: dict[str, str] = json.loads(body)
    assert reason["error"] == "request_timeout", reason
    return reason


def service(name: str, tmp_path: Path) -> HttpService:
    if name == "collector":
        return start_collector(tmp_path, env=DEADLINES)
    return HttpService(*start_http_service("gdpr.api", "privacy API", tmp_path, env=DEADLINES))


@pytest.fixture(params=["collector", "privacy API"])
def public_service(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Iterator[HttpService]:
    running = service(request.param, tmp_path)
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output()
    assert "Traceback" not in running.output(), running.output()


def test_a_client_dripping_its_headers_is_answered_408_and_closed(public_service: HttpService) -> None:
    answer = drip_until_closed(public_service.url, b"POST /v1/events HTTP/1.1\r\nHost: localhost\r\n", b"X-Drip: 1\r\n")
    assert "headers did not arrive within 0.5 s" in assert_408(answer)["detail"]
    assert public_service.http.get("/healthz").status_code == 200  # the service answers others


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(public_service: HttpService) -> None:
    assert drip_until_closed(public_service.url, b"", b"") == b""


def test_a_client_dripping_its_body_is_answered_408_in_the_services_shape(
    public_service: HttpService, settings: Settings
) -> None:
    path = "/v1/privacy-requests"
    authorization = ""
    if isinstance(public_service, Collector):  # with a key the collector has loaded, so it reads the body
        key = create_key("slow-body", "--rate", "1000")
        wait_for_status(lambda: public_service.post("/v1/events", json.dumps(event()).encode(), key), 202)
        path, authorization = "/v1/events", f"Authorization: Bearer {key}\r\n"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n["
    ).encode()
    answer = drip_until_closed(public_service.url, head, b" ")
    assert "body did not arrive within 0.5 s" in assert_408(answer)["detail"]
    assert public_service.http.get("/healthz").status_code == 200


HOST_REFUSED = "evil.example"


def allowed_hosts(url: str) -> list[str]:
    port = urlsplit(url).port
    return ["localhost", f"localhost:{port}", "127.0.0.1", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"]


def test_the_console_answers_its_hosts_only(settings: Settings, tmp_path: Path) -> None:
    console = start_console(tmp_path)
    try:
        for host in allowed_hosts(console.url):
            assert console.http.get("/login", headers={"Host": host}).status_code == 200, host
        for host in (HOST_REFUSED, f"{HOST_REFUSED}:{urlsplit(console.url).port}", "localhost.evil.example", "127.0.0.2"):
            refused = console.http.get("/login", headers={"Host": host})
            assert refused.status_code == 400, host
            assert refused.headers["content-type"].startswith("text/html")
            assert "CONSOLE_ALLOWED_HOSTS" in refused.text
            assert "login_token" not in refused.text
    finally:
        assert console.stop() == 0


def test_the_console_answers_the_hosts_it_is_configured_for(settings: Settings, tmp_path: Path) -> None:
    console = start_console(tmp_path, env={"CONSOLE_ALLOWED_HOSTS": "dpo.example.com, 127.0.0.1"})
    try:
        assert console.http.get("/login", headers={"Host": "dpo.example.com"}).status_code == 200
        assert console.http.get("/login", headers={"Host": "localhost"}).status_code == 400
    finally:
        assert console.stop() == 0


def test_the_dashboard_answers_its_hosts_only(settings: Settings, tmp_path: Path) -> None:
    dashboard = start_dashboard(tmp_path)
    try:
        for host in allowed_hosts(dashboard.url):
            assert dashboard.http.get("/api/summary", headers={"Host": host}).status_code == 200, host
        for path in ("/", "/api/summary"):
            refused = dashboard.http.get(path, headers={"Host": HOST_REFUSED})
            assert refused.status_code == 400
            assert refused.json()["error"] == "host_not_allowed"
            assert "DASHBOARD_ALLOWED_HOSTS" in refused.json()["detail"]
        # An HTTP/1.0 request without a Host header is refused too.
        parts = urlsplit(dashboard.url)
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as sock:
            sock.sendall(b"GET /api/summary HTTP/1.0\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    finally:
        assert dashboard.stop() == 0
