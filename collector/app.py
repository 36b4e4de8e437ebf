"""The HTTP layer (Falcon, ASGI): routes, request bodies, CORS headers and JSON errors.

Handlers are thin: they read headers and the body, call ``collector.service`` and answer. Every
error is ``{"error": code, "detail": text}`` in JSON, never an HTML page or a traceback; an
unforeseen defect is logged by its exception type alone (a message or traceback could quote a
payload).
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import falcon.asgi
import msgspec

from collector import body, consent
from collector.auth import WriteKey
from collector.errors import Refused
from collector.service import Answer, Collector
from core import metrics, web

logger = logging.getLogger(__name__)

_ENCODER = msgspec.json.Encoder()
JSON = "application/json"
# How long a browser may cache a preflight answer: the key set changes rarely, and a revoked key
# is refused on the real request anyway.
PREFLIGHT_MAX_AGE_S = 600
ALLOWED_HEADERS = "Authorization, Content-Type, X-Write-Key"
# The status codes a client may meet, by the code word a client can branch on.
_HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _answer(resp: falcon.asgi.Response, answer: Answer) -> None:
    resp.status = answer.status
    resp.content_type = JSON
    resp.data = _ENCODER.encode(answer.body)
    if answer.retry_after is not None:
        resp.set_header("Retry-After", str(answer.retry_after))


def _refuse(resp: falcon.asgi.Response, status: int, code: str, detail: str, retry_after: int | None = None) -> None:
    _answer(resp, Answer(status, {"error": code, "detail": detail}, retry_after))


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    return await web.read_body(req, limit, _too_large)


def _too_large(limit: int) -> Refused:
    return Refused(413, "body_too_large", f"the body exceeds {limit} bytes: send less per request")


def _media_type(req: falcon.asgi.Request, accepted: tuple[str, ...]) -> str:
    kind = body.media_type(req.content_type)
    if kind not in accepted:
        raise Refused(415, "unsupported_media_type", f"send Content-Type {' or '.join(accepted)}, not {kind or 'none'}")
    return kind


class _Keyed:
    """Resources that need a write key; their preflight is answered without one."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def authorize(self, req: falcon.asgi.Request) -> WriteKey:
        key = self.collector.authorize(
            req.get_header("Authorization"), req.get_header("X-Write-Key"), req.get_header("Origin"), req.remote_addr or ""
        )
        req.context.write_key = key
        return key

    async def on_options(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        origin = req.get_header("Origin")
        if not self.collector.preflight_allowed(origin):
            raise Refused(403, "origin_not_allowed", f"no write key allows pages at {origin or '(no Origin header)'}")
        resp.status = 204
        resp.set_header("Access-Control-Allow-Methods", "POST")
        resp.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        resp.set_header("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE_S))


class Events(_Keyed):
    """``POST /v1/events``: one event, a JSON array of events, or NDJSON."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self.authorize(req)
        kind = _media_type(req, body.MEDIA_TYPES)
        payload = await read_body(req, self.collector.settings.max_body_bytes)
        _answer(resp, await self.collector.ingest(payload, kind))


class Consent(_Keyed):
    """``POST /v1/consent``: grant or withdraw one purpose for one user."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        key = self.authorize(req)
        _media_type(req, (body.JSON,))
        payload = await read_body(req, consent.MAX_BODY_BYTES)
        _answer(resp, await self.collector.record_consent(payload, key))


class Health:
    """``GET /healthz``: the process answers (a liveness probe; it asks nothing else)."""

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _answer(resp, Answer(200, {"status": "ok"}))


class Ready:
    """``GET /readyz``: the broker and the database answer (a readiness probe)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _answer(resp, await self.collector.readiness())


class Cors:
    """CORS headers on the answers to browsers: the page's origin when its key allows it (or,
    before a key is known, when some key does), so the page can read the answer, errors included."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, _resource: object, _req_succeeded: bool
    ) -> None:
        origin = req.get_header("Origin")
        if origin is None:
            return
        resp.append_header("Vary", "Origin")
        key = getattr(req.context, "write_key", None)
        allowed = key.allows_origin(origin) if key is not None else self.collector.preflight_allowed(origin)
        if allowed:
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Expose-Headers", "Retry-After")


async def _on_refused(_req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]) -> None:
    assert isinstance(ex, Refused)  # noqa: S101 - registered for Refused only
    _refuse(resp, ex.status, ex.code, ex.detail, ex.retry_after)


async def _on_http_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]
) -> None:
    """Falcon's own errors (no route, wrong method, a malformed header) in the collector's shape."""
    assert isinstance(ex, falcon.HTTPError)  # noqa: S101 - registered for HTTPError only
    detail = web.error_detail(
        ex,
        not_found=f"no such path: {req.path}; the collector serves POST /v1/events, POST /v1/consent, GET /healthz, GET /readyz",
        not_allowed=f"{req.method} is not allowed on {req.path}; use {', '.join(web.allowed_methods(ex) or ['POST'])}",
    )
    _refuse(resp, ex.status_code, web.error_code(ex, _HTTP_ERROR_CODES), detail)
    web.copy_error_headers(ex, resp)


async def _on_defect(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]) -> None:
    # The type only: an exception's message or traceback may quote the request's data.
    logger.error("unforeseen %s while answering %s %s", type(ex).__name__, req.method, req.path)
    _refuse(resp, 500, "internal_error", "the collector failed on this request; it was logged - send it again later")


def create_app(collector: Collector) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application serving ``collector``."""
    app = falcon.asgi.App(middleware=[metrics.HttpMetrics()])
    app.add_middleware(Cors(collector))
    app.add_route("/v1/events", Events(collector))
    app.add_route("/v1/consent", Consent(collector))
    app.add_route("/healthz", Health())
    app.add_route("/readyz", Ready(collector))
    app.add_error_handler(Exception, _on_defect)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(Refused, _on_refused)
    return app
