"""The HTTP kit in process: a problem is answered in the service's shape with its status and
Retry-After, Falcon's own errors and defects in the same shape, the database down as a 503, and
the service's header policy on every answer, errors included."""

from __future__ import annotations

import logging

import falcon
import falcon.asgi
import pytest
from falcon import testing

from core import web
from core.errors import ServiceUnavailable
from core.web import Problem

logger = logging.getLogger("tests.kit")
SECRET = "jane@example.com"


class Thing:
    async def on_get(self, req: falcon.asgi.Request, _resp: falcon.asgi.Response) -> None:
        what = req.get_param("what")
        if what == "problem":
            raise Problem(429, "rate_limited", "wait", retry_after=3, extra={"attempts_left": 2})
        if what == "down":
            raise ServiceUnavailable(SECRET)
        raise RuntimeError(SECRET)

    async def on_post(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.set_header("Content-Security-Policy", "default-src 'self'")
        web.answer_json(resp, 201, {"made": 1})


POLICY = web.ErrorPolicy(
    not_found=lambda req: f"no such path: {req.path}",
    not_allowed=lambda req, allowed: f"{req.method} is not allowed; use {', '.join(allowed)}",
    internal="it failed; it was logged",
    logger=logger,
    codes={404: "no_such_path", 405: "method_not_allowed"},
    unavailable=(ServiceUnavailable,),
    when_unavailable=Problem(503, "database_unavailable", "try again", retry_after=5),
)
HEADERS = {"Content-Security-Policy": "default-src 'none'", "Cache-Control": "no-store"}


@pytest.fixture
def client() -> testing.TestClient:
    app: web.App = falcon.asgi.App()
    app.add_middleware(web.SecurityHeaders(HEADERS, overridable=["Content-Security-Policy"]))
    app.add_route("/thing", Thing())
    app.add_route("/healthz", web.Health())
    app.add_route("/plain", web.Health(plain=True))
    web.add_error_handlers(app, POLICY)
    return testing.TestClient(app)


def test_a_problem_is_its_status_its_json_reason_and_its_retry_after() -> None:
    problem = Problem(422, "invalid_field", "name the field", extra={"field": "email"})
    assert problem.body() == {"error": "invalid_field", "detail": "name the field", "field": "email"}
    assert str(problem) == "422 invalid_field: name the field"
    assert Problem.of(429, "slow down").code == "too_many_requests"


def test_a_raised_problem_is_answered_byte_for_byte_in_the_platforms_shape(client: testing.TestClient) -> None:
    result = client.simulate_get("/thing", params={"what": "problem"})
    assert result.status_code == 429 and result.headers["content-type"] == "application/json"
    assert result.content == b'{"error":"rate_limited","detail":"wait","attempts_left":2}'
    assert result.headers["retry-after"] == "3"


def test_falcons_own_errors_are_problems_in_the_services_words(client: testing.TestClient) -> None:
    missing = client.simulate_get("/nowhere")
    assert missing.status_code == 404 and missing.json == {"error": "no_such_path", "detail": "no such path: /nowhere"}
    wrong = client.simulate_delete("/thing")
    assert wrong.status_code == 405 and wrong.json["error"] == "method_not_allowed"
    assert wrong.json["detail"] == "DELETE is not allowed; use GET, POST" and "GET" in wrong.headers["allow"]


def test_the_database_down_is_a_503_with_retry_after(client: testing.TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tests.kit"):
        result = client.simulate_get("/thing", params={"what": "down"})
    assert result.status_code == 503 and result.json == {"error": "database_unavailable", "detail": "try again"}
    assert result.headers["retry-after"] == "5"
    assert "database unavailable while answering GET /thing" in caplog.text and SECRET not in caplog.text


def test_a_defect_is_a_500_logged_by_its_type_only(client: testing.TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="tests.kit"):
        result = client.simulate_get("/thing")
    assert result.status_code == 500 and result.json == {"error": "internal_error", "detail": "it failed; it was logged"}
    assert "unforeseen RuntimeError while answering GET /thing" in caplog.text
    assert SECRET not in caplog.text and SECRET not in result.text and "Traceback" not in caplog.text


def test_the_header_policy_is_on_every_answer_and_a_resource_may_set_its_own_csp(client: testing.TestClient) -> None:
    for result in (client.simulate_get("/healthz"), client.simulate_get("/nowhere"), client.simulate_get("/thing")):
        assert result.headers["content-security-policy"] == "default-src 'none'"
        assert result.headers["cache-control"] == "no-store"
    own = client.simulate_post("/thing")
    assert own.status_code == 201 and own.headers["content-security-policy"] == "default-src 'self'"
    assert own.headers["cache-control"] == "no-store"


def test_a_header_not_overridable_is_the_policys_whatever_the_resource_set() -> None:
    app: web.App = falcon.asgi.App()
    app.add_middleware(web.SecurityHeaders(HEADERS))
    app.add_route("/thing", Thing())
    assert testing.TestClient(app).simulate_post("/thing").headers["content-security-policy"] == "default-src 'none'"


def test_health_answers_json_or_plain_text(client: testing.TestClient) -> None:
    assert client.simulate_get("/healthz").content == b'{"status":"ok"}'
    plain = client.simulate_get("/plain")
    assert plain.text == "ok\n" and plain.headers["content-type"] == "text/plain; charset=utf-8"
