"""Fixtures for the collector: the real server process, real write keys, a real HTTP client.

Each test gets the session's broker and PostgreSQL with a fresh topic (``settings``), a write key
made by ``python -m collector.keys create`` and ``python -m collector --port 0`` started on that
stack; the port it bound is read from its log, and readiness is polled, never slept for.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Settings
from tests.helpers import HttpService, run_command, start_http_service, wait_until

ORIGIN = "https://shop.example"
# Fast key reloads, so a revoked or new key takes effect within a test's patience.
REFRESH_S = "0.2"


@dataclass
class Collector(HttpService):
    """A running ``python -m collector`` and an HTTP client pointed at it."""

    def post(
        self, path: str, body: bytes, key: str | None, content_type: str = "application/json", **headers: str
    ) -> httpx.Response:
        sent = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        return self.http.post(path, content=body, headers=sent)


def start_collector(
    log_dir: Path, env: dict[str, str] | None = None, ready: str = "/readyz", args: tuple[str, ...] = ()
) -> Collector:
    """Start the collector on a free port (with ``args`` added); return once ``ready`` answers 200."""
    env = {"COLLECTOR_KEY_REFRESH_S": REFRESH_S, **(env or {})}
    return Collector(*start_http_service("collector", "collector", log_dir, args=args, env=env, ready=ready))


def create_key(name: str, *args: str) -> str:
    """``python -m collector.keys create NAME args``; the key is the last line it prints."""
    result = run_command("collector.keys", "create", name, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def write_key(settings: Settings) -> str:
    """A live key named ``web`` that allows pages at ORIGIN and may record consent."""
    return create_key("web", "--origin", ORIGIN, "--rate", "10000", "--consent")


@pytest.fixture
def server_key(settings: Settings) -> str:
    """A live key named ``backend`` without origins (a back end's: no per-client share of its
    rate) that may record consent. Ask for it before ``collector``, which reads the keys as it starts."""
    return create_key("backend", "--rate", "10000", "--consent")


@pytest.fixture
def collector(settings: Settings, write_key: str, tmp_path: Path) -> Iterator[Collector]:
    """The collector on the test's stack and topic; it must stop cleanly (exit 0) on SIGTERM."""
    running = start_collector(tmp_path)
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output()


def event(**changes: Any) -> dict[str, Any]:
    """A valid page view of a fresh event id, stamped now."""
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "event_timestamp": datetime.now(UTC).isoformat(),
        "metadata": {"page": "/home"},
    }
    body.update(changes)
    return body


class TcpProxy:
    """A TCP forwarder to ``upstream`` that can be cut: a database the collector loses mid-run."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        # shutdown() first: close() alone leaves a socket that another thread is blocked in
        # accept() on listening, and it would still take connections.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The answer is ``status`` with the collector's JSON error ``code`` and a detail to act on."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10


def wait_for_status(send: Any, status: int, timeout: float = 30) -> httpx.Response:
    """Send again until the answer has ``status``; return that answer."""
    answers: list[httpx.Response] = []

    def answered() -> bool:
        answers.append(send())
        return answers[-1].status_code == status

    wait_until(answered, timeout=timeout, interval=0.05, what=f"HTTP {status}")
    return answers[-1]
