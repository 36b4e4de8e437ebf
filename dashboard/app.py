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
import psycopg2
from markupsafe import Markup

from core import db, web
from core.errors import PlatformError
from core.web import Problem
from dashboard import display
from dashboard.service import Dashboard

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
HTML = "text/html; charset=utf-8"
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

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
for _name in (
    "count",
    "people",
    "duration",
    "money",
    "rate",
    "pct",
    "seconds",
    "when",
    "finished",
    "lag",
    "kinds",
    "series",
    "bars",
):
    _TEMPLATES.filters[_name] = getattr(display, _name)


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
        web.answer_json(resp, 200, await self.dashboard.summary())


class Guard:
    """Before routing: a query string no browser sends is refused."""

    async def process_request(self, req: falcon.asgi.Request, _resp: falcon.asgi.Response) -> None:
        if len(req.query_string) > MAX_QUERY_BYTES:
            raise Problem(414, "query_too_long", f"the query string exceeds {MAX_QUERY_BYTES} bytes; the dashboard takes none")


def _reason(ex: BaseException) -> str:
    """What went wrong, for the log: a database error's SQLSTATE and primary message (never the
    data it may quote), a platform error's one line (written to be shown), or else the type alone."""
    if isinstance(ex, psycopg2.Error):
        return db.describe_error(ex)
    return str(ex) if isinstance(ex, PlatformError) else type(ex).__name__


# On every answer; a page sets its own Content-Security-Policy (its script's hash). No cache keeps
# any of it: the figures are live.
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
ERRORS = web.ErrorPolicy(
    not_found=lambda _req: f"no such path; the dashboard serves {ROUTES}",
    not_allowed=lambda req, _allowed: f"{req.method[:20]} is not allowed here; the dashboard only answers GET",
    internal="the dashboard failed on this request; it was logged",
    logger=logger,
    codes=_HTTP_ERROR_CODES,
    unavailable=(psycopg2.OperationalError, psycopg2.InterfaceError, PlatformError),
    when_unavailable=Problem(
        503,
        "database_unavailable",
        "the database does not answer; the figures come back when it does - try again in a moment",
        retry_after=RETRY_AFTER_S,
    ),
    describe=_reason,
)


def _foreign_host() -> Problem:
    detail = "the dashboard does not answer at this host name: open it at an address in DASHBOARD_ALLOWED_HOSTS"
    return Problem(400, "host_not_allowed", detail)


def create_app(dashboard: Dashboard) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application serving ``dashboard``."""
    app = falcon.asgi.App(middleware=[web.AllowedHosts(dashboard.settings.dashboard.allowed_hosts, _foreign_host)])
    app.add_middleware(Guard())
    app.add_middleware(web.SecurityHeaders(SECURITY_HEADERS, overridable=["Content-Security-Policy"]))
    app.add_route("/", Page(dashboard))
    app.add_route("/api/summary", Summary(dashboard))
    app.add_route("/healthz", web.Health())
    app.add_static_route("/static", str(HERE / "static"))
    web.add_error_handlers(app, ERRORS)
    return app
