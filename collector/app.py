"""The HTTP layer (Falcon, ASGI): routes, request bodies, CORS headers and JSON errors.

Handlers are thin: they read headers and the body, call ``collector.service`` and answer. Every
error is ``{"error": code, "detail": text}`` in JSON, never an HTML page or a traceback; an
unforeseen defect is logged by its exception type alone (a message or traceback could quote a
payload).
"""

from __future__ import annotations

import logging

import falcon
import falcon.asgi

from collector import body, consent
from collector.auth import WriteKey
from collector.service import Answer, Collector
from core import metrics, web
from core.web import Problem

logger = logging.getLogger(__name__)

# How long a browser may cache a preflight answer: the key set changes rarely, and a revoked key
# is refused on the real request anyway.
PREFLIGHT_MAX_AGE_S = 600
ALLOWED_HEADERS = "Authorization, Content-Type, X-Write-Key"
# The status codes a client may meet, by the code word a client can branch on.
_HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _answer(resp: falcon.asgi.Response, answer: Answer) -> None:
    web.answer_json(resp, answer.status, answer.body, answer.retry_after)


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    return await web.read_body(req, limit, _too_large)


def _too_large(limit: int) -> Problem:
    return Problem(413, "body_too_large", f"the body exceeds {limit} bytes: send less per request")


def _media_type(req: falcon.asgi.Request, accepted: tuple[str, ...]) -> str:
    kind = body.media_type(req.content_type)
    if kind not in accepted:
        raise Problem(415, "unsupported_media_type", f"send Content-Type {' or '.join(accepted)}, not {kind or 'none'}")
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
            raise Problem(403, "origin_not_allowed", f"no write key allows pages at {origin or '(no Origin header)'}")
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


ERRORS = web.ErrorPolicy(
    not_found=lambda req: (
        f"no such path: {req.path}; the collector serves POST /v1/events, POST /v1/consent, GET /healthz, GET /readyz"
    ),
    not_allowed=lambda req, allowed: f"{req.method} is not allowed on {req.path}; use {', '.join(allowed or ['POST'])}",
    internal="the collector failed on this request; it was logged - send it again later",
    logger=logger,
    codes=_HTTP_ERROR_CODES,
)


def create_app(collector: Collector) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application serving ``collector``."""
    app = falcon.asgi.App(middleware=[metrics.HttpMetrics()])
    app.add_middleware(Cors(collector))
    app.add_route("/v1/events", Events(collector))
    app.add_route("/v1/consent", Consent(collector))
    app.add_route("/healthz", web.Health())
    app.add_route("/readyz", Ready(collector))
    web.add_error_handlers(app, ERRORS)
    return app
