"""The HTTP layer of the analysts' API (Falcon, ASGI): routes, bearer tokens, JSON errors.

Handlers are thin: the client's rate, the caller's token and role, the parameters
(analytics.api.params), then analytics.api.service; each refusal is checked before anything is
computed. Every error is ``{"error": code, "detail": text}`` in JSON; a 401 says ``WWW-Authenticate:
Bearer``. No answer is cached: each is a release drawn from somebody's budget.
"""

from __future__ import annotations

import dataclasses
import logging

import falcon
import falcon.asgi
import psycopg2

from analytics.api import openapi
from analytics.api.service import ENDPOINTS, AnalystsApi, Endpoint
from core import web
from core.errors import ServiceUnavailable
from core.web import Problem

logger = logging.getLogger(__name__)

ROUTES = ", ".join(f"GET {endpoint.path}" for endpoint in ENDPOINTS) + ", GET /openapi.json, GET /healthz"
_HTTP_ERROR_CODES = {400: "bad_request", 404: "no_such_path", 405: "method_not_allowed"}


class Route:
    """``GET endpoint.path``: rate, token, role, parameters, then the release or reading."""

    def __init__(self, api: AnalystsApi, endpoint: Endpoint) -> None:
        self.api = api
        self.endpoint = endpoint

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self.api.admit(req.remote_addr)
        caller = await self.api.caller(req.get_header("Authorization"), self.endpoint)
        query = self.api.parse(self.endpoint, dict(req.params))
        web.answer_json(resp, 200, await self.api.answer(caller, self.endpoint, query))


class OpenApi:
    """``GET /openapi.json``: the API's description, to anybody (it holds no figure)."""

    def __init__(self, api: AnalystsApi) -> None:
        self.document = openapi.document(api.limits)

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        web.answer_json(resp, 200, self.document)


def _render(req: falcon.asgi.Request, resp: falcon.asgi.Response, problem: Problem) -> None:
    web.problem_json(req, resp, problem)
    if problem.status == 401:
        resp.set_header("WWW-Authenticate", 'Bearer realm="analysts"')


SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
ERRORS = web.ErrorPolicy(
    not_found=lambda _req: f"no such path; the analysts' API serves {ROUTES}",
    not_allowed=lambda req, allowed: f"{req.method} is not allowed here; use {', '.join(allowed) or 'another path'}",
    internal="the analysts' API failed on this request; it was logged - send it again later",
    logger=logger,
    codes=_HTTP_ERROR_CODES,
    unavailable=(psycopg2.OperationalError, psycopg2.InterfaceError, ServiceUnavailable),
    # when_unavailable: set by create_app, whose Retry-After is the setting's.
    render=_render,
)


def create_app(api: AnalystsApi) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application serving ``api``."""
    app = falcon.asgi.App()
    app.add_middleware(web.SecurityHeaders(SECURITY_HEADERS))
    for endpoint in ENDPOINTS:
        app.add_route(endpoint.path, Route(api, endpoint))
    app.add_route("/openapi.json", OpenApi(api))
    app.add_route("/healthz", web.Health())
    unavailable = Problem(
        503,
        "database_unavailable",
        "the database does not answer: nothing was computed or spent; try again later",
        retry_after=api.settings.retry_after_s,
    )
    web.add_error_handlers(app, dataclasses.replace(ERRORS, when_unavailable=unavailable))
    return app
