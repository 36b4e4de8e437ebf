"""CORS: a preflight carries no key and is answered for origins some live key allows."""

from __future__ import annotations

import pytest

from tests.integration.collector.conftest import ORIGIN, Collector, assert_error

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path", ["/v1/events", "/v1/consent"])
def test_a_preflight_from_an_allowed_origin_is_answered(collector: Collector, path: str) -> None:
    response = collector.http.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-methods"] == "POST"
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert allowed == {"authorization", "content-type", "x-write-key"}
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.headers["vary"] == "Origin"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", None])
def test_a_preflight_from_any_other_origin_is_403(collector: Collector, origin: str | None) -> None:
    headers = {"Access-Control-Request-Method": "POST"} | ({"Origin": origin} if origin else {})
    response = collector.http.options("/v1/events", headers=headers)
    assert_error(response, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in response.headers
