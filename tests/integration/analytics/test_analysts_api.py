"""The analysts' API end to end: accounts made by ``python -m analytics.accounts`` on the real
PostgreSQL, ``python -m analytics.api`` on a free port, a real HTTP client.

Tokens are stored as hashes only and printed once, an analyst's budget set in privacy_budgets;
every release answers figures with their 95 % intervals, the declaration and the budget left, the
budget going down with each; a release past a budget is a 403 privacy_budget_exhausted with what is
left and nothing recorded; the DPO reads the budgets and the ledger; a missing, wrong or disabled token is a 401; an
analyst's token is refused the DPO's readings and a DPO's the releases (403); a client over its
rate gets a 429; every endpoint answers hostile parameters (huge, negative, NaN or infinite
epsilon, injections, 10,000 characters, a user id) with a 4xx JSON reason, never a 500; the
OpenAPI document describes every route.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from analytics import dp, ledger
from analytics.analysts import TOKEN_PATTERN
from analytics.api.service import ENDPOINTS, READINGS, RELEASES
from core import db
from core.config import Settings
from tests.helpers import HttpService, query, run_command, start_http_service
from tests.integration.analytics.test_releases import DAYS, FIRST, seed

pytestmark = pytest.mark.integration

GENEROUS = {"ANALYSTS_API_REQUESTS_PER_CLIENT_PER_MINUTE": "100000"}
TODAY = datetime.now(UTC).date()


@dataclass
class Api(HttpService):
    """A running ``python -m analytics.api`` and an HTTP client pointed at it."""

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.http.get(path, params=params, headers=headers)


def start_api(log_dir: Path, env: dict[str, str]) -> Api:
    return Api(*start_http_service("analytics.api", "analysts' API", log_dir, env=env))


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[Api]:
    """The API on the test's stack; it must stop cleanly (exit 0) on SIGTERM."""
    running = start_api(tmp_path, GENEROUS)
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output()


def create(name: str, *args: str) -> str:
    """Make an account with the operator's command; its token, from the last line printed."""
    made = run_command("analytics.accounts", "create", name, *args)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert TOKEN_PATTERN.fullmatch(token), made.stdout
    return token


def good_params(path: str) -> dict[str, str]:
    """Parameters each endpoint accepts."""
    endpoint = next(e for e in ENDPOINTS if e.path == path)
    fields = {field.alias or name for name, field in endpoint.query.model_fields.items()}
    week_ago = (TODAY - timedelta(days=7)).isoformat()
    given = {"epsilon": "1", "from": week_ago, "to": TODAY.isoformat()}
    return {name: value for name, value in given.items() if name in fields}


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and isinstance(body["detail"], str) and len(body["detail"]) > 10, body
    if code is not None:
        assert body["error"] == code, body
    return body


# -- accounts -------------------------------------------------------------------------------


def test_accounts_store_only_the_tokens_hash_and_print_it_once(settings: Settings) -> None:
    token = create("ana", "--budget", "2.5")

    [(role, stored, requested, disabled)] = query(
        settings, "SELECT role, token_hash, requested_epsilon, disabled_at FROM analyst_accounts WHERE name = 'ana'"
    )
    assert (role, requested, disabled) == ("analyst", None, None)
    assert query(settings, "SELECT epsilon, period FROM privacy_budgets WHERE analyst = 'ana'") == [(2.5, "year")]
    assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in stored
    listed = run_command("analytics.accounts", "list")
    assert listed.returncode == 0 and "ana" in listed.stdout and "2.5" in listed.stdout and token not in listed.stdout

    again = run_command("analytics.accounts", "create", "ana", "--budget", "1")
    assert again.returncode == 2 and "exists already" in again.stderr
    assert run_command("analytics.accounts", "disable", "ana").returncode == 0
    assert query(settings, "SELECT disabled_at IS NOT NULL FROM analyst_accounts WHERE name = 'ana'") == [(True,)]
    assert run_command("analytics.accounts", "disable", "ana").returncode == 2


@pytest.mark.parametrize(
    "args",
    [
        ["create", "ana"],  # an analyst without a budget
        ["create", "ana", "--budget", "0"],
        ["create", "ana", "--budget", "-1"],
        ["create", "ana", "--budget", "nan"],
        ["create", "ana", "--budget", "inf"],
        ["create", "dee", "--role", "dpo", "--budget", "1"],  # a DPO spends none
        ["create", "x" * 10_000, "--budget", "1"],
        ["create", "ana'; DROP TABLE analyst_accounts; --", "--budget", "1"],
        ["create", "ana", "--budget", "1", "--role", "admin"],
    ],
)
def test_the_accounts_command_refuses_bad_arguments_in_one_line(settings: Settings, args: list[str]) -> None:
    refused = run_command("analytics.accounts", *args)
    assert refused.returncode == 2, refused.stdout
    last = refused.stderr.strip().splitlines()[-1]
    assert "Traceback" not in refused.stderr and last.startswith("python -m analytics.accounts create: error:")
    assert query(settings, "SELECT count(*) FROM analyst_accounts") == [(0,)]


# -- tokens and roles -----------------------------------------------------------------------


def test_a_missing_malformed_unknown_or_disabled_token_is_a_401(settings: Settings, api: Api) -> None:
    token = create("ana", "--budget", "1")
    path = RELEASES[0].path
    params = good_params(path)

    missing = api.get(path, None, **params)
    assert_problem(missing, 401, "missing_token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_problem(api.http.get(path, params=params, headers={"Authorization": f"Basic {token}"}), 401, "missing_token")
    for wrong in ("nonsense", token[:-1] + ("A" if token[-1] != "A" else "B"), "dpa_" + "x" * 10_000):
        assert_problem(api.get(path, wrong, **params), 401, "invalid_token")

    assert api.get(path, token, **params).status_code != 401
    assert run_command("analytics.accounts", "disable", "ana").returncode == 0
    assert_problem(api.get(path, token, **params), 401, "invalid_token")
    assert token not in api.output()


def test_each_role_is_refused_the_other_roles_endpoints(settings: Settings, api: Api) -> None:
    analyst = create("ana", "--budget", "10")
    overall_budget(settings, 10)
    dpo = create("dee", "--role", "dpo")

    for endpoint in READINGS:
        assert_problem(api.get(endpoint.path, analyst, **good_params(endpoint.path)), 403, "wrong_role")
        assert api.get(endpoint.path, dpo, **good_params(endpoint.path)).status_code != 403
    for endpoint in RELEASES:
        assert_problem(api.get(endpoint.path, dpo, **good_params(endpoint.path)), 403, "wrong_role")
        assert api.get(endpoint.path, analyst, **good_params(endpoint.path)).status_code != 403


def overall_budget(settings: Settings, epsilon: float) -> None:
    """The DPO's overall budget (every release draws from it too), set as the console's login does."""
    with db.connection(settings.database, role=db.CONSOLE_ROLE) as conn, conn, conn.cursor() as cur:
        ledger.set_budget(cur, ledger.OVERALL, epsilon, "dpo:test")


def ledger_rows(settings: Settings) -> int:
    [(count,)] = query(settings, "SELECT count(*) FROM privacy_ledger")
    return int(count)


def assert_figures(cell: dict[str, Any], names: set[str]) -> None:
    for name in names:
        figure = cell[name]
        assert figure["low"] <= figure["value"] <= figure["high"] and figure["half_width"] > 0, cell
        assert figure["high"] - figure["low"] == pytest.approx(2 * figure["half_width"])


def test_every_release_answers_figures_with_intervals_and_the_budget_goes_down(settings: Settings, api: Api) -> None:
    seed(settings, {"DE": 8, "FR": 3})
    analyst = create("ana", "--budget", "3")
    overall_budget(settings, 100)
    first, last = FIRST.isoformat(), (FIRST + timedelta(days=DAYS - 1)).isoformat()
    asked = 0.5
    left = 3.0
    for endpoint in RELEASES:
        params = {**good_params(endpoint.path), "epsilon": str(asked)}
        if "from" in params:
            params |= {"from": first, "to": last}
        answer = api.get(endpoint.path, analyst, **params)
        assert answer.status_code == 200, answer.text + api.output()[-4000:]
        body = answer.json()
        left -= asked
        assert body["epsilon"] == pytest.approx(asked) and body["budget_left"] == pytest.approx(left), body["query"]
        declared = body["declaration"]
        assert declared["unit"] == "person" and declared["mechanism"] == dp.MECHANISM and declared["scale"]
        assert body["cells"], endpoint.path
        for cell in body["cells"]:
            assert_figures(cell, {name for name, value in cell.items() if isinstance(value, dict)})
        assert "user" not in answer.text.lower(), "nothing per person leaves"
    assert ledger_rows(settings) == len(RELEASES)

    kpis = api.get("/v1/kpis/daily-by-country", analyst, epsilon="0.1", **{"from": first, "to": last}, country="DE,FR").json()
    expected = {((FIRST + timedelta(days=d)).isoformat(), c) for d in range(DAYS) for c in ("DE", "FR")}
    assert {(cell["day"], cell["country"]) for cell in kpis["cells"]} == expected, "the named countries' cells, all of them"
    funnel = api.get("/v1/funnel", analyst, epsilon="0.1", **{"from": first, "to": last}).json()
    steps = {((FIRST + timedelta(days=d)).isoformat(), s) for d in range(DAYS) for s in dp.FUNNEL_STEPS}
    assert {(cell["day"], cell["step"]) for cell in funnel["cells"]} == steps
    rfm = api.get("/v1/rfm/segments", analyst, epsilon="0.1").json()
    assert {cell["segment"] for cell in rfm["cells"]} == set(dp.SEGMENT_SOURCES["monetary"][2])
    assert {"people", "total", "mean"} <= set(rfm["cells"][0])


def test_a_release_past_the_budget_is_a_403_with_what_is_left_and_nothing_recorded(settings: Settings, api: Api) -> None:
    seed(settings, {"DE": 3})
    analyst = create("ana", "--budget", "1")
    overall_budget(settings, 100)
    path = "/v1/funnel"
    assert api.get(path, analyst, **{**good_params(path), "epsilon": "0.75"}).status_code == 200
    assert ledger_rows(settings) == 1

    refused = assert_problem(api.get(path, analyst, **{**good_params(path), "epsilon": "0.5"}), 403, "privacy_budget_exhausted")
    assert refused["budget_left"] == pytest.approx(0.25) and refused["scope"] == "analyst"
    assert "0.25" in refused["detail"] and "nothing was computed" in refused["detail"]
    assert ledger_rows(settings) == 1, "a refused release records nothing"

    overall_budget(settings, 0.8)  # the overall budget is the tighter one now
    refused = assert_problem(api.get(path, analyst, **{**good_params(path), "epsilon": "0.1"}), 403, "privacy_budget_exhausted")
    assert refused["scope"] == "overall" and refused["budget_left"] == pytest.approx(0.05)
    assert ledger_rows(settings) == 1


def test_the_dpo_reads_the_budgets_and_the_ledger(settings: Settings, api: Api) -> None:
    analyst = create("ana", "--budget", "2")
    dpo = create("dee", "--role", "dpo")
    overall_budget(settings, 50)
    for epsilon in ("0.5", "0.25"):
        assert api.get("/v1/rfm/segments", analyst, epsilon=epsilon).status_code == 200

    budgets = api.get("/v1/budgets", dpo)
    assert budgets.status_code == 200, budgets.text
    by_analyst = {b["analyst"]: b for b in budgets.json()["budgets"]}
    assert by_analyst["ana"]["spent"] == pytest.approx(0.75) and by_analyst["ana"]["left"] == pytest.approx(1.25)
    assert by_analyst[ledger.OVERALL]["overall"] and by_analyst[ledger.OVERALL]["left"] == pytest.approx(49.25)

    entries = api.get("/v1/ledger", dpo, limit="1").json()["entries"]
    assert len(entries) == 1 and entries[0]["epsilon"] == pytest.approx(0.25), "newest first"
    everything = api.get("/v1/ledger", dpo, analyst="ana").json()["entries"]
    assert [e["query"] for e in everything] == [dp.QUERY_RFM, dp.QUERY_RFM]
    assert everything[0]["details"]["unit"] == "person" and everything[0]["row_hash"]
    assert api.get("/v1/ledger", dpo, analyst="bob").json()["entries"] == []


def test_a_client_over_its_rate_gets_a_429_with_retry_after(settings: Settings, tmp_path: Path) -> None:
    limited = start_api(tmp_path, {"ANALYSTS_API_REQUESTS_PER_CLIENT_PER_MINUTE": "3"})
    try:
        answers = [limited.get("/v1/funnel") for _ in range(4)]
        assert [a.status_code for a in answers[:3]] == [401, 401, 401]
        refused = assert_problem(answers[3], 429, "rate_limited")
        assert int(answers[3].headers["retry-after"]) >= 1 and "3 requests a minute" in refused["detail"]
    finally:
        assert limited.stop() == 0, limited.output()


# -- hostile parameters ---------------------------------------------------------------------

HUGE = "9" * 400
HOSTILE_EPSILONS = ["0", "-1", "-0.0", "NaN", "nan", "inf", "-inf", "Infinity", "1e309", HUGE, "1e-400", "1e-11", "", "one",
                    "1; DROP TABLE analyst_accounts", "x" * 10_000, "0x10", "1_0"]  # fmt: skip
HOSTILE_DAYS = ["1700000000", "2024-02-30", "0000-01-01", "9999-12-31", "2024-1-1", "' OR 1=1 --", "x" * 10_000,
                "2024-01-01T00:00:00", "-2024-01-01"]  # fmt: skip


def hostile_queries(path: str) -> list[dict[str, Any]]:
    """Every kind of bad parameter the endpoint can be sent, beside otherwise good ones."""
    good = good_params(path)
    cases: list[dict[str, Any]] = [{**good, "epsilon": value} for value in HOSTILE_EPSILONS]
    cases += [{**good, "user_id": "00000000-0000-0000-0000-000000000001"}, {**good, "userId": "1"}, {**good, "x" * 10_000: "1"}]
    cases += [{**good, "epsilon": ["1", "1"]}, {**good, "epsilon": "1000000"}]
    if "from" in good:
        cases += [{**good, "from": value} for value in HOSTILE_DAYS]
        cases += [{**good, "to": value} for value in HOSTILE_DAYS]
        cases += [{**good, "from": good["to"], "to": good["from"]}]  # reversed
        cases += [{**good, "from": "1900-01-01"}]  # a century and more
        cases += [{**good, "from": (TODAY - timedelta(days=400)).isoformat()}]  # past the release module's 366 days
        cases += [{**good, "to": (TODAY + timedelta(days=1)).isoformat()}]  # the future
    if path == "/v1/kpis/daily-by-country":
        cases += [{**good, "country": value} for value in ("XX", "de' OR '1'='1", "D" * 10_000, "DE,", "GB")]
    if path == "/v1/ledger":
        cases += [{"limit": value} for value in ("0", "-1", HUGE, "NaN", "1.5")]
        cases += [{"analyst": value} for value in ("x" * 10_000, "a'; --", "A", "ana; drop", "report:daily'")]
    return cases


@pytest.mark.parametrize("path", [endpoint.path for endpoint in ENDPOINTS])
def test_every_endpoint_answers_hostile_parameters_with_a_4xx_reason(settings: Settings, api: Api, path: str) -> None:
    token = create("dee", "--role", "dpo") if any(e.path == path for e in READINGS) else create("ana", "--budget", "1")
    cases = hostile_queries(path)
    for params in cases:
        answer = api.get(path, token, **params)
        body = assert_problem(answer, 400)
        assert body["error"] in ("invalid_parameter", "unknown_parameter"), body
        # The reason names the parameter, never the value sent back.
        assert not any(isinstance(v, str) and len(v) > 40 and v in answer.text for v in params.values()), body
    assert "Traceback" not in api.output() and "unforeseen" not in api.output()


def test_a_user_id_is_refused_by_name(settings: Settings, api: Api) -> None:
    token = create("ana", "--budget", "1")
    path = "/v1/funnel"
    body = assert_problem(api.get(path, token, **good_params(path), user_id="1"), 400, "unknown_parameter")
    assert "user id" in body["detail"]


# -- the OpenAPI document -------------------------------------------------------------------


def test_the_openapi_document_describes_every_route_and_its_parameters(settings: Settings, api: Api) -> None:
    answer = api.http.get("/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    document = answer.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {endpoint.path for endpoint in ENDPOINTS}
    for endpoint in ENDPOINTS:
        operation = document["paths"][endpoint.path]["get"]
        names = {p["name"] for p in operation["parameters"]}
        assert names == {field.alias or name for name, field in endpoint.query.model_fields.items()}
        assert {"400", "401", "403", "429"} <= set(operation["responses"])
        assert "privacy_budget_exhausted" in operation["responses"]["403"]["description"]
        assert "release_module_unavailable" not in str(operation["responses"])
        if endpoint in RELEASES:
            assert "budget_left" in operation["responses"]["200"]["description"]
        assert not any("user" in name.lower() for name in names)
    kpis = document["paths"]["/v1/kpis/daily-by-country"]["get"]
    epsilon = next(p for p in kpis["parameters"] if p["name"] == "epsilon")
    assert epsilon["required"] and epsilon["schema"]["minimum"] == float(ledger.EPSILON_PLACES)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    country = next(p for p in kpis["parameters"] if p["name"] == "country")
    assert not country["required"] and country["schema"]["type"] == "array"
