"""The HTTP layer (Falcon, ASGI): routes, request bodies and JSON errors.

Handlers are thin: they check the id, the secret, the media type and the body's size and shape
(``gdpr.api.payloads``), call ``gdpr.api.service`` and answer; a malformed id or secret is
refused before the database is asked anything. Every error is ``{"error": code, "detail": text}``
in JSON, never an HTML page or a traceback; an unforeseen defect is logged by its exception type
alone (a message could quote what was sent). No answer may be cached: each is about one person.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.asgi
import msgspec

from core import metrics, web
from gdpr.api import payloads
from gdpr.api.errors import Refused
from gdpr.api.service import Answer, PrivacyApi

logger = logging.getLogger(__name__)

_ENCODER = msgspec.json.Encoder()
JSON = "application/json"
ROUTES = (
    "POST /v1/privacy-requests, POST /v1/privacy-requests/{id}/verify, GET /v1/privacy-requests/{id},"
    " GET /v1/privacy-requests/{id}/export, GET /healthz, GET /readyz"
)
# The status codes a client may meet from Falcon itself, by the code word a client can branch on.
_HTTP_ERROR_CODES = {400: "bad_request", 404: "no_such_path", 405: "method_not_allowed", 413: "body_too_large"}


def _answer(resp: falcon.asgi.Response, answer: Answer) -> None:
    resp.status = answer.status
    resp.content_type = JSON
    resp.data = _ENCODER.encode(answer.body)
    if answer.retry_after is not None:
        resp.set_header("Retry-After", str(answer.retry_after))


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    return await web.read_body(req, limit, _too_large)


def _too_large(limit: int) -> Refused:
    return Refused(413, "body_too_large", f"the body exceeds {limit} bytes: a request is an address, a type and corrections")


def _json_body(req: falcon.asgi.Request) -> None:
    kind = (req.content_type or "").split(";", 1)[0].strip().lower()
    if kind != JSON:
        raise Refused(415, "unsupported_media_type", f"send Content-Type {JSON}, not {kind or 'none'}")


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


class Health:
    """``GET /healthz``: the process answers (a liveness probe; it asks nothing else)."""

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _answer(resp, Answer(200, {"status": "ok"}))


class Ready(_Resource):
    """``GET /readyz``: the database and the mail server answer (a readiness probe)."""

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _answer(resp, await self.api.readiness())


class NoStore:
    """Every answer is about one person's request (or carries its secret): no cache keeps it,
    no browser guesses its type."""

    async def process_response(
        self, _req: falcon.asgi.Request, resp: falcon.asgi.Response, _resource: object, _req_succeeded: bool
    ) -> None:
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Content-Type-Options", "nosniff")


async def _on_refused(_req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]) -> None:
    assert isinstance(ex, Refused)  # noqa: S101 - registered for Refused only
    _answer(resp, Answer(ex.status, ex.body(), ex.retry_after))


async def _on_http_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]
) -> None:
    """Falcon's own errors (no route, wrong method, a malformed header) in the API's shape."""
    assert isinstance(ex, falcon.HTTPError)  # noqa: S101 - registered for HTTPError only
    detail = web.error_detail(
        ex,
        not_found=f"no such path; the privacy API serves {ROUTES}",
        not_allowed=f"{req.method} is not allowed here; use {', '.join(web.allowed_methods(ex)) or 'another path'}",
    )
    _answer(resp, Answer(ex.status_code, {"error": web.error_code(ex, _HTTP_ERROR_CODES), "detail": detail}))
    web.copy_error_headers(ex, resp)


async def _on_defect(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]) -> None:
    # The type only: an exception's message or traceback may quote the request's data.
    logger.error("unforeseen %s while answering %s %s", type(ex).__name__, req.method, req.uri_template or "(no route)")
    body = {"error": "internal_error", "detail": "the privacy API failed on this request; it was logged - send it again later"}
    _answer(resp, Answer(500, body))


def create_app(api: PrivacyApi) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application serving ``api``."""
    app = falcon.asgi.App(middleware=[metrics.HttpMetrics()])
    app.add_middleware(NoStore())
    app.add_route("/v1/privacy-requests", PrivacyRequests(api))
    app.add_route("/v1/privacy-requests/{request_id}", PrivacyRequest(api))
    app.add_route("/v1/privacy-requests/{request_id}/verify", Verify(api))
    app.add_route("/v1/privacy-requests/{request_id}/export", Export(api))
    app.add_route("/healthz", Health())
    app.add_route("/readyz", Ready(api))
    app.add_error_handler(Exception, _on_defect)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(Refused, _on_refused)
    return app
