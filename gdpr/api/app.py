"""The HTTP layer (Falcon, ASGI): routes, request bodies and JSON errors.

Handlers are thin: they check the id, the secret, the media type and the body's size and shape
(``gdpr.api.payloads``), call ``gdpr.api.service`` and answer; a malformed id or secret is
refused before the database is asked anything. Every error is ``{"error": code, "detail": text}``
in JSON, never an HTML page or a traceback; an unforeseen defect is logged by its exception type
alone (a message could quote what was sent). No answer may be cached: each is about one person.
"""

from __future__ import annotations

import logging

import falcon
import falcon.asgi

from core import metrics, web
from core.web import Problem
from gdpr.api import payloads
from gdpr.api.service import Answer, PrivacyApi

logger = logging.getLogger(__name__)

JSON = web.JSON
ROUTES = (
    "POST /v1/privacy-requests, POST /v1/privacy-requests/{id}/verify, GET /v1/privacy-requests/{id},"
    " GET /v1/privacy-requests/{id}/export, GET /healthz, GET /readyz"
)
# The status codes a client may meet from Falcon itself, by the code word a client can branch on.
_HTTP_ERROR_CODES = {400: "bad_request", 404: "no_such_path", 405: "method_not_allowed", 413: "body_too_large"}


def _answer(resp: falcon.asgi.Response, answer: Answer) -> None:
    web.answer_json(resp, answer.status, answer.body, answer.retry_after)


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    return await web.read_body(req, limit, _too_large)


def _too_large(limit: int) -> Problem:
    return Problem(413, "body_too_large", f"the body exceeds {limit} bytes: a request is an address, a type and corrections")


def _json_body(req: falcon.asgi.Request) -> None:
    kind = (req.content_type or "").split(";", 1)[0].strip().lower()
    if kind != JSON:
        raise Problem(415, "unsupported_media_type", f"send Content-Type {JSON}, not {kind or 'none'}")


class _Resource:
    def __init__(self, api: PrivacyApi) -> None:
        self.api = api

    async def body(self, req: falcon.asgi.Request) -> bytes:
        _json_body(req)
        return await read_body(req, self.api.api.max_body_bytes)


class PrivacyRequests(_Resource):
    """``POST /v1/privacy-requests``: file a request; its code is mailed to the address."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        new = payloads.parse_new_request(await self.body(req))
        _answer(resp, await self.api.file(new, req.remote_addr))


class PrivacyRequest(_Resource):
    """``GET /v1/privacy-requests/{id}``: the request's status, to its secret's holder."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, request_id: str) -> None:
        number = payloads.parse_id(request_id)
        secret = payloads.bearer_secret(req.get_header("Authorization"))
        _answer(resp, await self.api.status(number, secret))


class Verify(_Resource):
    """``POST /v1/privacy-requests/{id}/verify``: the mailed code, back."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, request_id: str) -> None:
        number = payloads.parse_id(request_id)
        secret = payloads.bearer_secret(req.get_header("Authorization"))
        code = payloads.parse_code(await self.body(req))
        _answer(resp, await self.api.verify(number, secret, code))


class Export(_Resource):
    """``GET /v1/privacy-requests/{id}/export``: the access export, once, as a JSON attachment."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, request_id: str) -> None:
        number = payloads.parse_id(request_id)
        secret = payloads.bearer_secret(req.get_header("Authorization"))
        export = await self.api.download(number, secret)
        resp.status = 200
        resp.content_type = JSON
        resp.set_header("Content-Disposition", f'attachment; filename="{export.filename}"')
        resp.data = export.content


class Ready(_Resource):
    """``GET /readyz``: the database and the mail server answer (a readiness probe)."""

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _answer(resp, await self.api.readiness())


# Every answer is about one person's request (or carries its secret): no cache keeps it, no
# browser guesses its type.
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
ERRORS = web.ErrorPolicy(
    not_found=lambda _req: f"no such path; the privacy API serves {ROUTES}",
    not_allowed=lambda req, allowed: f"{req.method} is not allowed here; use {', '.join(allowed) or 'another path'}",
    internal="the privacy API failed on this request; it was logged - send it again later",
    logger=logger,
    codes=_HTTP_ERROR_CODES,
)


def create_app(api: PrivacyApi) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application serving ``api``."""
    app = falcon.asgi.App(middleware=[metrics.HttpMetrics()])
    app.add_middleware(web.SecurityHeaders(SECURITY_HEADERS))
    app.add_route("/v1/privacy-requests", PrivacyRequests(api))
    app.add_route("/v1/privacy-requests/{request_id}", PrivacyRequest(api))
    app.add_route("/v1/privacy-requests/{request_id}/verify", Verify(api))
    app.add_route("/v1/privacy-requests/{request_id}/export", Export(api))
    app.add_route("/healthz", web.Health())
    app.add_route("/readyz", Ready(api))
    web.add_error_handlers(app, ERRORS)
    return app
