"""The dashboard's HTTP layer (Falcon, ASGI): the page, its JSON and the JSON errors.

``GET /`` is the whole page rendered on the server, complete without a script; a small inline
script (templates/refresh.js) then asks ``GET /api/summary`` every few seconds and writes the new
figures into it. The Content-Security-Policy allows that one script by its SHA-256 and nothing
else: no other script, no inline style, no framing, no form, connections to this origin only.
Nothing is cached (the figures are live). Every error is ``{"error": code, "detail": text}`` in
JSON, never a traceback; an unforeseen defect is logged by its exception type alone.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
import jinja2
import msgspec
import psycopg2
from markupsafe import Markup

from core import db, web
from core.errors import PlatformError
from dashboard import display
from dashboard.service import Dashboard

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
HTML = "text/html; charset=utf-8"
JSON = "application/json"
ROUTES = "GET / (the page), GET /api/summary (its figures, JSON), GET /healthz"
# The dashboard takes no parameters; a query string longer than this is not a browser's.
MAX_QUERY_BYTES = 1024
RETRY_AFTER_S = 5
# The status codes a client may meet from Falcon itself, by the code word a client can branch on.
_HTTP_ERROR_CODES = {400: "bad_request", 404: "no_such_path", 405: "method_not_allowed"}

# The page's one script, inlined as it is in this file; the policy names its hash.
SCRIPT = (HERE / "templates" / "refresh.js").read_text(encoding="utf-8")
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
PAGE_CSP = (
    f"default-src 'none'; script-src 'sha256-{SCRIPT_HASH}'; style-src 'self'; connect-src 'self';"
    " base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Anything but the page (the JSON, the stylesheet, errors) runs nothing and embeds nothing.
CSP = "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

_ENCODER = msgspec.json.Encoder()
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
for _name in ("count", "money", "rate", "pct", "seconds", "when", "finished", "lag", "kinds", "series", "bars"):
    _TEMPLATES.filters[_name] = getattr(display, _name)


class Refused(Exception):
    """A request the dashboard refuses: its HTTP status, a code word and a sentence to act on."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def _json(resp: falcon.asgi.Response, status: int, body: object) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.data = _ENCODER.encode(body)


def render_page(figures: dict[str, Any]) -> str:
    """The page with ``figures`` (a summary) written in, and the refresh script."""
    script = Markup(SCRIPT)  # noqa: S704 - our own file, read at import; no data of any request
    return _TEMPLATES.get_template("dashboard.html.j2").render(
        s=figures, script=script, bar_width=display.BAR_WIDTH, bar_height=display.BAR_HEIGHT
    )


class Page:
    """``GET /``: the dashboard, complete as rendered; its script refreshes the figures."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        figures = await self.dashboard.summary()
        resp.content_type = HTML
        resp.text = render_page(figures)
        resp.set_header("Content-Security-Policy", PAGE_CSP)


class Summary:
    """``GET /api/summary``: the figures as JSON (see dashboard.summary.build)."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _json(resp, 200, await self.dashboard.summary())


class Health:
    """``GET /healthz``: the process answers (a liveness probe; it asks nothing else)."""

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        _json(resp, 200, {"status": "ok"})


class Guard:
    """Before routing: a query string no browser sends is refused. After: the security headers on
    every answer, and no cache keeps any of it."""

    async def process_request(self, req: falcon.asgi.Request, _resp: falcon.asgi.Response) -> None:
        if len(req.query_string) > MAX_QUERY_BYTES:
            raise Refused(414, "query_too_long", f"the query string exceeds {MAX_QUERY_BYTES} bytes; the dashboard takes none")

    async def process_response(
        self, _req: falcon.asgi.Request, resp: falcon.asgi.Response, _resource: object, _req_succeeded: bool
    ) -> None:
        if resp.get_header("Content-Security-Policy") is None:
            resp.set_header("Content-Security-Policy", CSP)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("Cross-Origin-Resource-Policy", "same-origin")
        resp.set_header("Cache-Control", "no-store")


async def _on_refused(_req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]) -> None:
    assert isinstance(ex, Refused)  # noqa: S101 - registered for Refused only
    _json(resp, ex.status, {"error": ex.error, "detail": ex.detail})


async def _on_http_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]
) -> None:
    """Falcon's own errors (no route, a wrong method, a malformed request) in the dashboard's shape."""
    assert isinstance(ex, falcon.HTTPError)  # noqa: S101 - registered for HTTPError only
    detail = web.error_detail(
        ex,
        not_found=f"no such path; the dashboard serves {ROUTES}",
        not_allowed=f"{req.method[:20]} is not allowed here; the dashboard only answers GET",
    )
    _json(resp, ex.status_code, {"error": web.error_code(ex, _HTTP_ERROR_CODES), "detail": detail})
    web.copy_error_headers(ex, resp)


def _reason(ex: BaseException) -> str:
    """What went wrong, for the log: a database error's SQLSTATE and primary message (never the
    data it may quote), a platform error's one line (written to be shown), or else the type alone."""
    if isinstance(ex, psycopg2.Error):
        return db.describe_error(ex)
    return str(ex) if isinstance(ex, PlatformError) else type(ex).__name__


async def _on_unavailable(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]
) -> None:
    reason = _reason(ex)
    logger.warning("database unavailable while answering %s %s: %s", req.method, req.uri_template or req.path[:100], reason)
    detail = "the database does not answer; the figures come back when it does - try again in a moment"
    _json(resp, 503, {"error": "database_unavailable", "detail": detail})
    resp.set_header("Retry-After", str(RETRY_AFTER_S))


async def _on_defect(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]) -> None:
    # Never a traceback or an exception's message: either could quote what was read.
    reason = _reason(ex)
    logger.error("unforeseen %s while answering %s %s", reason, req.method, req.uri_template or "(no route)")
    _json(resp, 500, {"error": "internal_error", "detail": "the dashboard failed on this request; it was logged"})


def _foreign_host() -> Refused:
    detail = "the dashboard does not answer at this host name: open it at an address in DASHBOARD_ALLOWED_HOSTS"
    return Refused(400, "host_not_allowed", detail)


def create_app(dashboard: Dashboard) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application serving ``dashboard``."""
    app = falcon.asgi.App(middleware=[web.AllowedHosts(dashboard.settings.dashboard.allowed_hosts, _foreign_host)])
    app.add_middleware(Guard())
    app.add_route("/", Page(dashboard))
    app.add_route("/api/summary", Summary(dashboard))
    app.add_route("/healthz", Health())
    app.add_static_route("/static", str(HERE / "static"))
    app.add_error_handler(Exception, _on_defect)
    app.add_error_handler(psycopg2.OperationalError, _on_unavailable)
    app.add_error_handler(psycopg2.InterfaceError, _on_unavailable)
    app.add_error_handler(PlatformError, _on_unavailable)
    app.add_error_handler(falcon.HTTPError, _on_http_error)
    app.add_error_handler(Refused, _on_refused)
    return app
