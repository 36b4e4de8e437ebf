"""The dashboard's HTTP layer in process, without a database: the page complete as rendered, its one
script allowed by its hash and nothing else, the JSON never cached, and every refusal a JSON reason
(a real server with a real database: tests/integration/dashboard)."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from types import SimpleNamespace
from typing import Any, cast

import psycopg2
import pytest
from falcon import testing

from core.config import DashboardSettings
from dashboard import summary
from dashboard.app import MAX_QUERY_BYTES, create_app
from dashboard.service import Dashboard
from tests.unit.dashboard.test_summary import snapshot

SECRET = "jane.doe@example.com"
FIGURES = summary.build(snapshot(), {0: 110, 1: 50}, "user_events", 5)


class FakeDashboard:
    """Answers every summary with FIGURES, or fails with ``error``; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = None
        # Falcon's test client names its own host; the dashboard answers only the hosts it allows.
        self.settings = SimpleNamespace(dashboard=DashboardSettings(allowed_hosts=(testing.helpers.DEFAULT_HOST,)))

    async def summary(self) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return FIGURES


@pytest.fixture
def dashboard() -> FakeDashboard:
    return FakeDashboard()


@pytest.fixture
def client(dashboard: FakeDashboard) -> testing.TestClient:
    return testing.TestClient(create_app(cast(Dashboard, dashboard)))


def assert_secured(result: testing.Result) -> None:
    assert result.headers["x-content-type-options"] == "nosniff"
    assert result.headers["cache-control"] == "no-store"
    assert result.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in result.headers["content-security-policy"]
    assert result.headers["content-security-policy"].startswith("default-src 'none'")


def test_the_page_is_complete_as_rendered(client: testing.TestClient) -> None:
    page = client.simulate_get("/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert_secured(page)
    text = page.text
    assert '<dd id="revenue" data-bind="today.revenue" data-format="money">2,345.67</dd>' in text
    assert '<span id="overdue" data-bind="privacy_requests.overdue" data-format="count">1</span>' in text
    assert '<div class="tile alert" data-alert="privacy_requests.overdue">' in text
    assert re.search(r'<tr data-row="purchase">\s*<th scope="row" data-bind="label">Then purchased</th>\s*<td[^>]*>45</td>', text)
    assert re.search(r'<tr data-row="raw-events-sink">', text) and ">10.0<" in text and "2026-11-23 10:00:05 UTC" in text
    assert '<tr data-row="overdue" data-alert="alert" class="alert">' in text
    assert '<tr data-row="batch" class="outcome-ok" data-class="outcome">' in text
    assert '<th scope="row" data-bind="reason">invalid_json</th>' in text
    assert "<noscript>" in text


def test_the_pages_one_inline_script_is_allowed_by_its_hash_and_nothing_else_is(client: testing.TestClient) -> None:
    page = client.simulate_get("/")
    scripts = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert len(scripts) == 1 and page.text.count("<script") == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode("utf-8")).digest()).decode()
    policy = dict(directive.split(" ", 1) for directive in page.headers["content-security-policy"].split("; "))
    assert policy["script-src"] == f"'sha256-{digest}'"
    assert policy["default-src"] == "'none'" and policy["style-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["form-action"] == "'none'" and policy["base-uri"] == "'none'"
    # No inline style either: bars are drawn with SVG attributes, the rest by the stylesheet.
    assert " style=" not in page.text and "<style" not in page.text
    assert "innerHTML" not in scripts[0]  # figures go in as text, never as markup


def test_the_summary_is_json_and_never_cached(client: testing.TestClient) -> None:
    answer = client.simulate_get("/api/summary")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json == FIGURES
    assert_secured(answer)
    assert "script-src" not in answer.headers["content-security-policy"]


def test_the_health_probe_asks_nothing(client: testing.TestClient, dashboard: FakeDashboard) -> None:
    answer = client.simulate_get("/healthz")
    assert (answer.status_code, answer.json) == (200, {"status": "ok"})
    assert dashboard.calls == 0


def test_the_stylesheet_is_served(client: testing.TestClient) -> None:
    css = client.simulate_get("/static/dashboard.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert client.simulate_get("/static/../app.py").status_code == 404


@pytest.mark.parametrize("path", ["/nothing", "/api/summary/1", "/api", "/static/nothing.css", "/%00"])
def test_an_unknown_path_is_a_json_404_naming_what_exists(client: testing.TestClient, path: str) -> None:
    answer = client.simulate_get(path)
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/json"
    assert answer.json["error"] == "no_such_path" and "GET /api/summary" in answer.json["detail"]
    assert_secured(answer)


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/"), ("DELETE", "/api/summary"), ("PUT", "/healthz"), ("POST", "/api/summary")]
)
def test_a_wrong_method_is_a_json_405(client: testing.TestClient, dashboard: FakeDashboard, method: str, path: str) -> None:
    answer = client.simulate_request(method, path, body=b'{"x": 1}', content_type="application/json")
    assert answer.status_code == 405 and answer.json["error"] == "method_not_allowed"
    assert f"{method} is not allowed here" in answer.json["detail"] and "GET" in answer.headers["allow"]
    assert dashboard.calls == 0


def test_a_huge_query_string_is_refused_before_anything_is_asked(client: testing.TestClient, dashboard: FakeDashboard) -> None:
    for path in ("/", "/api/summary", "/nothing"):
        answer = client.simulate_get(path, query_string="q=" + "x" * 100_000)
        assert answer.status_code == 414 and answer.json["error"] == "query_too_long"
        assert str(MAX_QUERY_BYTES) in answer.json["detail"]
        assert_secured(answer)
    assert dashboard.calls == 0
    # A short one (a bookmark's) is ignored.
    assert client.simulate_get("/api/summary", query_string="from=bookmark").status_code == 200


@pytest.mark.parametrize(
    "error", [psycopg2.OperationalError("server closed the connection"), psycopg2.InterfaceError("connection already closed")]
)
def test_a_database_that_does_not_answer_is_a_503_to_retry(
    client: testing.TestClient, dashboard: FakeDashboard, error: BaseException
) -> None:
    dashboard.error = error
    for path in ("/", "/api/summary"):
        answer = client.simulate_get(path)
        assert answer.status_code == 503 and answer.json["error"] == "database_unavailable"
        assert answer.headers["retry-after"] == "5"
        assert_secured(answer)


def test_a_defect_is_a_500_logged_by_its_type_alone(
    client: testing.TestClient, dashboard: FakeDashboard, caplog: pytest.LogCaptureFixture
) -> None:
    dashboard.error = RuntimeError(f"cannot handle {SECRET}")
    with caplog.at_level(logging.ERROR, logger="dashboard.app"):
        answer = client.simulate_get("/api/summary")
    assert answer.status_code == 500 and answer.json["error"] == "internal_error"
    assert SECRET not in answer.text and SECRET not in caplog.text
    assert "unforeseen RuntimeError while answering GET /api/summary" in caplog.text


def test_a_foreign_host_is_refused_before_anything_is_asked(client: testing.TestClient, dashboard: FakeDashboard) -> None:
    """DNS rebinding: a page of another site reaching the dashboard names its own host."""
    result = client.simulate_get("/api/summary", host="evil.example")
    assert result.status_code == 400 and result.json["error"] == "host_not_allowed"
    assert dashboard.calls == 0
