"""The console's HTTP layer in process, without a database: security headers on every answer,
sign-in first, CSRF before anything is read, HTML errors, and a defect logged by its type alone
(the statuses a real server answers with a real database are tested in tests/integration/console)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import pytest
from argon2 import PasswordHasher
from falcon import testing

from console import auth
from console.app import Services, create_app
from core.config import ConsoleSettings
from core.pool import Database

SECRET = "jane.doe@example.com"


class BrokenDatabase:
    """A pool whose every transaction fails with a message that quotes personal data."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, _work: Callable[[Any], object]) -> object:
        self.calls += 1
        raise RuntimeError(f"cannot handle {SECRET}")


@pytest.fixture
def database() -> BrokenDatabase:
    return BrokenDatabase()


@pytest.fixture
def client(database: BrokenDatabase) -> testing.TestClient:
    services = Services(
        database=cast(Database, database),
        passwords=auth.Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)),
        throttle=auth.Throttle(),
        # Falcon's test client names its own host; the console answers only the hosts it allows.
        settings=ConsoleSettings(allowed_hosts=(testing.helpers.DEFAULT_HOST,)),
        hmac_key=b"unit",
        consent_mode="assumed",
    )
    return testing.TestClient(create_app(services))


def assert_secured(result: testing.Result) -> None:
    assert result.headers["content-security-policy"].startswith("default-src 'self'; script-src 'none'")
    assert result.headers["x-frame-options"] == "DENY"
    assert result.headers["cache-control"] == "no-store"
    assert result.headers["x-content-type-options"] == "nosniff"


def test_pages_need_a_session_and_a_post_without_one_is_refused(client: testing.TestClient, database: BrokenDatabase) -> None:
    queue = client.simulate_get("/")
    assert queue.status_code == 303 and queue.headers["location"] == "/login"
    assert_secured(queue)
    refused = client.simulate_post("/requests/1/deny", body="reason=x", content_type="application/x-www-form-urlencoded")
    assert refused.status_code == 403 and "sign in again" in refused.text
    assert_secured(refused)
    assert database.calls == 0  # no cookie: nothing was looked up


def test_the_login_form_carries_its_own_token_in_a_strict_cookie(client: testing.TestClient) -> None:
    page = client.simulate_get("/login")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    cookie = page.cookies["console_login"]
    assert cookie.http_only and cookie.same_site == "Strict" and cookie.path == "/login"
    assert f'name="login_token" value="{cookie.value}"' in page.text
    assert "<script" not in page.text
    forged = client.simulate_post(
        "/login", body="login_token=other&username=dora&password=x", content_type="application/x-www-form-urlencoded"
    )
    assert forged.status_code == 403 and "login form expired" in forged.text


@pytest.mark.parametrize("path", ["/nowhere", "/requests/abc", "/requests/-1", "/requests/1/2/3", "/static/nothing.css"])
def test_unknown_paths_are_html_404_pages(client: testing.TestClient, path: str) -> None:
    result = client.simulate_get(path)
    assert result.status_code == 404 and "text/html" in result.headers["content-type"]
    assert "there is no such page" in result.text
    assert_secured(result)


def test_the_stylesheet_is_served_from_the_console_itself(client: testing.TestClient) -> None:
    css = client.simulate_get("/static/console.css")
    assert css.status_code == 200 and "tr.overdue" in css.text
    assert_secured(css)


def test_a_defect_is_a_500_page_logged_by_its_type_only(client: testing.TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        result = client.simulate_get("/", cookies={"console_session": "some-token"})
    assert result.status_code == 500 and "it was logged" in result.text
    assert "RuntimeError" in caplog.text
    assert SECRET not in caplog.text and SECRET not in result.text and "Traceback" not in caplog.text


def test_a_foreign_host_is_refused(client: testing.TestClient) -> None:
    """DNS rebinding: a page of another site reaching the console names its own host."""
    result = client.simulate_get("/login", host="evil.example")
    assert result.status_code == 400
    assert "CONSOLE_ALLOWED_HOSTS" in result.text
