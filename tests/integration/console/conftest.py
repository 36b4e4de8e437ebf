"""Fixtures for the DPO console: the real server process, a real account, a real HTTP client.

Each test gets the session's PostgreSQL with empty tables (``settings``), a DPO account made by
``python -m console.accounts create`` and ``python -m console --port 0`` started on that stack;
the port it bound is read from its log, and readiness is polled, never slept for.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from tests.browser import Browser, chromium_or_skip
from tests.helpers import PROJECT_ROOT, HttpService, query, start_http_service

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
DPO = "dora"
PASSWORD = "correct horse battery staple"


def accounts(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m console.accounts args``, the password (if any) on standard input."""
    return subprocess.run(
        [sys.executable, "-m", "console.accounts", *args],
        cwd=PROJECT_ROOT,
        input=None if password is None else password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Console(HttpService):
    """A running ``python -m console`` and an HTTP client pointed at it (cookies kept, redirects not
    followed: httpx's defaults)."""

    def login(self, username: str = DPO, password: str = PASSWORD) -> httpx.Response:
        form = self.http.get("/login")
        found = LOGIN_TOKEN.search(form.text)
        assert found, form.text
        return self.http.post("/login", data={"login_token": found.group(1), "username": username, "password": password})

    def csrf(self, path: str = "/") -> str:
        page = self.http.get(path)
        found = CSRF.search(page.text)
        assert found, page.text
        return found.group(1)

    def act(self, request_id: int, action: str, **fields: str) -> httpx.Response:
        token = self.csrf(f"/requests/{request_id}")
        return self.http.post(f"/requests/{request_id}/{action}", data={"csrf": token, **fields})


def start_console(log_dir: Path, env: dict[str, str] | None = None) -> Console:
    """Start the console on a free port; return once /healthz answers 200."""
    return Console(*start_http_service("console", "console", log_dir, env=env))


@pytest.fixture
def account(settings: Settings) -> str:
    result = accounts("create", DPO, "--password-stdin", password=PASSWORD)
    assert result.returncode == 0, result.stderr
    return DPO


@pytest.fixture
def console(settings: Settings, account: str, tmp_path: Path) -> Iterator[Console]:
    """The console on the test's stack; it must stop cleanly (exit 0) on SIGTERM, and never
    have met a defect."""
    running = start_console(tmp_path)
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output()
    assert "unforeseen" not in running.output(), running.output()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile (the test is skipped where none is installed)."""
    running = Browser(chromium_or_skip(), tmp_path / "profile")
    try:
        yield running
    finally:
        running.close()


def file_request(
    settings: Settings,
    email: str | None = "jane.doe@example.com",
    kind: str = "erasure",
    status: str = "pending",
    days_ago: int = 0,
) -> int:
    """A request as an operator (or, unverified, the API) files it, received ``days_ago`` days ago."""
    [(request_id,)] = query(
        settings,
        "INSERT INTO privacy_requests (email, request_type, status, channel, requested_at)"
        " VALUES (%s, %s, %s, %s, now() - make_interval(days => %s)) RETURNING id",
        (email, kind, status, "api" if status == "unverified" else "sql", days_ago),
    )
    return int(request_id)
