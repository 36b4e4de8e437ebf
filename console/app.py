"""The console's HTTP layer (Falcon, ASGI): pages rendered on the server, forms, sessions, CSRF.

Handlers are thin: they parse the request, call ``console.auth``, ``console.queries`` or
``gdpr.actions`` through the database pool, and answer with a page or a redirect. ``/budgets`` is
the privacy budgets page (issue 29): the budgets, the ledger's latest releases, a form to set one. The pages
carry no script at all, so the Content-Security-Policy forbids every script; every POST form
carries the session's CSRF token (the login form a double-submit token of its own), and a POST
without it is refused with 403 before anything is read from the database. Every error is a page
that says what to do; an unforeseen defect is logged by its exception type alone (a message or
traceback could quote a request's data) and answered 500.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode

import falcon
import falcon.asgi
import jinja2
import psycopg2

from analytics import ledger
from console import auth, queries
from core import db, metrics, pool, web
from core.config import ConsoleSettings
from core.errors import ServiceUnavailable
from gdpr import actions
from gdpr.requests import REQUEST_TYPES, STATUSES

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
# The longest form is a reason of 500 characters, each up to 4 UTF-8 bytes, each byte %XX-encoded.
MAX_FORM_BYTES = 8192
MAX_FORM_FIELDS = 10
MAX_TOKEN_LENGTH = 100  # our tokens have 43 characters; anything longer is not one of them
LOGIN_FORM_S = 3600  # the login form's own token is good for an hour
HTML = "text/html; charset=utf-8"
# No script, no inline style, no framing, forms post here only.
CSP = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
ACTIONS = ("verify", "deny", "extend", "hold", "release", "lift-restriction")
# The notice after an action (``?done=``): its name, or RELEASE_HELD after a release that left
# another hold on the person in force.
RELEASE_HELD = "release-held"
ACTION_DONE = {
    "verify": "Identity verified: the processor takes the request next.",
    "deny": "Request denied; the requester's email was removed, the reason recorded.",
    "extend": "Deadline extended; tell the requester, with the reason.",
    "hold": "Legal hold placed: the person's erasure waits until it is released.",
    "release": "Legal hold released; no other hold on the person is active: their erasures on hold are processed next.",
    RELEASE_HELD: "Legal hold released; another hold on the person is still active: their erasures stay on hold.",
    "lift-restriction": "Restriction lifted.",
}
# What the reason fields say: the reason is kept in the hash-chained, append-only audit trail.
REASON_HINT = "A case reference and the ground, never personal data: it is kept in the audit trail for good."
BUSY_RETRY_S = 5
UNAVAILABLE_RETRY_S = 5  # the database back after a restart or a failover

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _day(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d}"


_TEMPLATES.filters["when"] = _when
_TEMPLATES.filters["day"] = _day


class Redirect(Exception):
    """Answer 303 See Other to ``location`` (after a POST, or to the login page)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


@dataclass(frozen=True)
class Services:
    """What the handlers call: the pool, the password hasher, the login brake and the settings."""

    database: pool.Database
    passwords: auth.Passwords
    throttle: auth.Throttle
    settings: ConsoleSettings
    hmac_key: bytes
    consent_mode: str
    # Mails an API requester a denial or an extension with its reason (gdpr.mail); None: nobody is told.
    tell: Callable[[actions.Requester, str, str, datetime | None], bool] | None = None


def render(resp: falcon.asgi.Response, template: str, http_status: int = 200, /, **context: Any) -> None:
    resp.status = http_status
    resp.content_type = HTML
    resp.text = _TEMPLATES.get_template(template).render(**context)


def see_other(resp: falcon.asgi.Response, location: str) -> None:
    """303 See Other: after a POST the browser GETs ``location`` (a reload repeats nothing)."""
    resp.status = 303
    resp.location = location
    resp.content_type = "text/plain; charset=utf-8"
    resp.text = f"see {location}\n"


def _fail(status: int, message: str) -> NoReturn:
    raise web.Problem.of(status, message)


def _form_too_large(limit: int) -> web.Problem:
    return web.Problem.of(413, f"the form exceeds {limit} bytes: shorten the reason")


async def read_form(req: falcon.asgi.Request) -> dict[str, str]:
    """The URL-encoded form of a POST: at most MAX_FORM_BYTES, each field once, valid UTF-8."""
    body = await web.read_body(req, MAX_FORM_BYTES, _form_too_large)
    if not body:
        return {}  # an empty form: refused for what it lacks (its CSRF token first)
    kind = (req.content_type or "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        _fail(415, "send the form as application/x-www-form-urlencoded (as a browser does)")
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        _fail(400, "the form could not be read (not URL-encoded UTF-8, or too many fields): send it from the console's page")
    form = dict(pairs)
    if len(form) != len(pairs):
        _fail(400, "a form field was sent twice: send the form from the console's page")
    return form


def _set_cookie(resp: falcon.asgi.Response, name: str, value: str, *, max_age: int, secure: bool, path: str = "/") -> None:
    resp.set_cookie(name, value, max_age=max_age, secure=secure, http_only=True, same_site="Strict", path=path)


def _cookie(req: falcon.asgi.Request, name: str) -> str | None:
    values = req.get_cookie_values(name) or []
    value = values[0] if values else None
    return value if value and len(value) <= MAX_TOKEN_LENGTH else None


def _same(sent: str | None, expected: str | None) -> bool:
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


# On every answer: no script, no framing, no caching of pages that show requests.
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Sessions:
    """Finds the DPO's session from the cookie (``req.context.session``, None without one)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def process_request(self, req: falcon.asgi.Request, _resp: falcon.asgi.Response) -> None:
        req.context.session = None
        token = _cookie(req, SESSION_COOKIE)
        if token is not None and not req.path.startswith("/static/"):
            req.context.session = await self.services.database.call(lambda cur: auth.find_session(cur, token))


def signed_in(req: falcon.asgi.Request) -> auth.Session:
    """The session, or a redirect to the login page (a POST without one is refused)."""
    session: auth.Session | None = req.context.session
    if session is None:
        if req.method == "POST":
            _fail(403, "your session has ended: sign in again, then repeat the action")
        raise Redirect("/login")
    return session


def check_csrf(form: dict[str, str], session: auth.Session) -> None:
    if not _same(form.get("csrf"), session.csrf_token):
        _fail(403, "the form's security token is missing or stale: reload the page and submit it again")


class Login:
    """``GET /login``: the form; ``POST /login``: a session cookie, then the queue."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if req.context.session is not None:
            raise Redirect("/")
        self._form(req, resp, 200, None)

    def _form(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, status: int, error: str | None) -> None:
        token = secrets.token_urlsafe(32)
        _set_cookie(resp, LOGIN_COOKIE, token, max_age=LOGIN_FORM_S, secure=self.services.settings.secure_cookies, path="/login")
        notice = "You have signed out." if req.get_param("done") == "logout" else None
        render(resp, "login.html.j2", status, login_token=token, error=error, notice=notice, session=None)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        form = await read_form(req)
        if not _same(form.get("login_token"), _cookie(req, LOGIN_COOKIE)):
            _fail(403, "the login form expired or was not sent from this console: reload the login page")
        username = form.get("username", "").strip().lower()
        password = form.get("password", "")
        throttle = self.services.throttle
        wait = throttle.attempt(username)  # counted now: simultaneous guesses cannot all pass
        if wait > 0:
            raise web.Problem.of(
                429, f"too many failed logins for this account: try again in {int(wait) + 1} s", retry_after=int(wait) + 1
            )
        services = self.services
        opened = await services.database.call(
            lambda cur: auth.login(cur, services.passwords, username, password, services.settings.session_hours)
        )
        if opened is None:
            logger.info("failed console login")  # never the name typed: it may be a password
            self._form(req, resp, 401, "Wrong username or password.")
            return
        throttle.succeeded(username)
        token, session = opened
        logger.info("DPO %s signed in to the console", session.username)
        _set_cookie(
            resp, SESSION_COOKIE, token, max_age=services.settings.session_hours * 3600, secure=services.settings.secure_cookies
        )
        resp.unset_cookie(LOGIN_COOKIE, path="/login")
        see_other(resp, "/")


class Logout:
    """``POST /logout``: the session ends here and in the database."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        session = signed_in(req)
        check_csrf(await read_form(req), session)
        token = _cookie(req, SESSION_COOKIE)
        if token is not None:
            await self.services.database.call(lambda cur: auth.logout(cur, token))
        resp.unset_cookie(SESSION_COOKIE, path="/")
        see_other(resp, "/login?done=logout")


class Queue:
    """``GET /``: open requests by urgency, then recent answers; ``?status=`` and ``?type=`` filter."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        session = signed_in(req)
        status = req.get_param("status") or ""
        kind = req.get_param("type") or ""
        if status not in ("", "open", "all", *STATUSES):
            _fail(400, f"no status {status[:40]!r}: choose one from the filter")
        if kind not in ("", *REQUEST_TYPES):
            _fail(400, f"no request type {kind[:40]!r}: choose one from the filter")
        rows = await self.services.database.call(lambda cur: queries.queue(cur, status, kind))
        render(
            resp,
            "queue.html.j2",
            session=session,
            rows=rows,
            status=status,
            kind=kind,
            statuses=STATUSES,
            types=REQUEST_TYPES,
            recent_days=queries.RECENT_DAYS,
            overdue=sum(r.overdue for r in rows),
            open_count=sum(r.is_open for r in rows),
        )


@dataclass(frozen=True)
class RequestPage:
    """Everything the request page shows."""

    detail: queries.RequestDetail
    timeline: list[queries.AuditEntry]
    holds: list[queries.Hold]
    restricted: bool


def load_request_page(cur: db.Cursor, request_id: int, hmac_key: bytes) -> RequestPage | None:
    detail = queries.request(cur, request_id, hmac_key)
    if detail is None:
        return None
    return RequestPage(
        detail, queries.timeline(cur, request_id), queries.holds(cur, detail.proof), queries.restriction_in_force(cur, request_id)
    )


class Request:
    """``GET /requests/{id}``: the request, its legal holds, its audit timeline and the actions."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, request_id: int) -> None:
        session = signed_in(req)
        done = req.get_param("done") or ""
        await show_request(self.services, resp, session, request_id, notice=ACTION_DONE.get(done))


async def show_request(
    services: Services,
    resp: falcon.asgi.Response,
    session: auth.Session,
    request_id: int,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> None:
    page = await services.database.call(lambda cur: load_request_page(cur, request_id, services.hmac_key))
    if page is None:
        _fail(404, f"there is no privacy request {request_id}: pick one from the queue")
    render(
        resp,
        "request.html.j2",
        status,
        session=session,
        page=page,
        r=page.detail.row,
        notice=notice,
        error=error,
        max_reason=actions.MAX_REASON_LENGTH,
        reason_hint=REASON_HINT,
        active_holds=[h for h in page.holds if h.active],
    )


def _months(form: dict[str, str]) -> int:
    text = form.get("months", "")
    if text not in ("1", "2"):
        _fail(400, "choose an extension of 1 or 2 months")
    return int(text)


def _hold_id(form: dict[str, str]) -> int:
    text = form.get("hold", "")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) < 2**63:
        _fail(400, "choose the hold to release with its button on the request's page")
    return int(text)


def _until(form: dict[str, str]) -> datetime | None:
    text = form.get("until", "").strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        _fail(400, "the hold's end must be a date, YYYY-MM-DD (or empty: until released)")
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


Work = Callable[[db.Cursor], object]
# The actions whose requester is told (Art. 12(3) and 12(4)), when they filed through the API.
TOLD = ("deny", "extend")


def _action_work(action: str, form: dict[str, str], request_id: int, username: str, services: Services) -> Work:
    """What an action does in its transaction, its form's fields parsed (a Problem 400 when not)."""
    reason = form.get("reason", "")
    key = services.hmac_key
    if action == "verify":
        return lambda cur: actions.verify_manually(cur, request_id, username)
    if action == "deny":
        return lambda cur: actions.deny(cur, request_id, username, reason, key)
    if action == "extend":
        months = _months(form)
        return lambda cur: actions.extend(cur, request_id, username, months, reason)
    if action == "hold":
        until = _until(form)
        return lambda cur: actions.place_hold(cur, request_id, username, reason, until=until, hmac_key=key)
    if action == "release":
        hold = _hold_id(form)
        return lambda cur: actions.release_hold(cur, hold, username, key, request_id=request_id)
    if action == "lift-restriction":
        return lambda cur: actions.lift_restriction(cur, request_id, username, services.consent_mode)
    _fail(404, f"there is no action {action[:40]!r}: use the buttons on the request's page")


class Action:
    """``POST /requests/{id}/{action}``: one DPO action, then back to the request's page."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, request_id: int, action: str) -> None:
        session = signed_in(req)
        if action not in ACTIONS:
            _fail(404, f"there is no action {action[:40]!r}: use the buttons on the request's page")
        form = await read_form(req)
        check_csrf(form, session)
        act = _action_work(action, form, request_id, session.username, self.services)
        told = action in TOLD and self.services.tell is not None

        def work(cur: db.Cursor) -> tuple[object, actions.Requester | None]:
            # The requester is read before a denial removes their address.
            who = actions.requester(cur, request_id) if told else None
            return act(cur), who

        try:
            result, who = await self.services.database.call(work)
        except actions.UnknownRequest as e:
            _fail(404, str(e))
        except actions.ActionRefused as e:
            status = 400 if isinstance(e, actions.InvalidArgument) else 409
            await show_request(self.services, resp, session, request_id, error=str(e), status=status)
            if isinstance(e, actions.RequestBusy):
                resp.set_header("Retry-After", str(BUSY_RETRY_S))
            return
        logger.info("DPO %s: %s on request %d", session.username, action, request_id)
        if who is not None and self.services.tell is not None:
            due = result if isinstance(result, datetime) else None
            decision = "denied" if action == "deny" else "extended"
            await asyncio.to_thread(self.services.tell, who, decision, form.get("reason", "").strip(), due)
        done = RELEASE_HELD if isinstance(result, actions.HoldReleased) and result.still_active else action
        see_other(resp, f"/requests/{request_id}?{urlencode({'done': done})}")


BUDGET_SET = "Budget set: it is kept in the audit trail in your name; releases past it are refused from now on."


async def show_budgets(
    services: Services,
    resp: falcon.asgi.Response,
    session: auth.Session,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> None:
    page = await services.database.call(queries.budgets_page)
    render(
        resp,
        "budgets.html.j2",
        status,
        session=session,
        page=page,
        overall=ledger.OVERALL,
        periods=ledger.PERIODS,
        default_period=ledger.DEFAULT_PERIOD,
        max_epsilon=actions.MAX_BUDGET_EPSILON,
        notice=notice,
        error=error,
        form=form or {},
    )


def _epsilon(form: dict[str, str]) -> float:
    """The form's epsilon as a number (InvalidArgument when it is none); its range is the action's to check."""
    text = form.get("epsilon", "").strip()
    try:
        return float(text) if len(text) <= 40 else float("nan")
    except ValueError:
        raise actions.InvalidArgument(
            f"the budget must be a number, an epsilon above 0 and at most {actions.MAX_BUDGET_EPSILON:g} (such as 1 or 0.5)"
        ) from None


class Budgets:
    """``GET /budgets``: the privacy budgets and the ledger's latest releases; ``POST /budgets``: set one."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        session = signed_in(req)
        await show_budgets(self.services, resp, session, notice=BUDGET_SET if req.get_param("done") == "set" else None)

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        session = signed_in(req)
        form = await read_form(req)
        check_csrf(form, session)
        analyst = form.get("analyst", "")
        period = form.get("period", ledger.DEFAULT_PERIOD)
        try:
            epsilon = _epsilon(form)
            await self.services.database.call(lambda cur: actions.set_budget(cur, session.username, analyst, epsilon, period))
        except actions.ActionRefused as e:
            status = 400 if isinstance(e, actions.InvalidArgument) else 409
            await show_budgets(self.services, resp, session, error=str(e), status=status, form=form)
            if isinstance(e, actions.RequestBusy):
                resp.set_header("Retry-After", str(BUSY_RETRY_S))
            return
        logger.info("DPO %s set a privacy budget", session.username)
        see_other(resp, "/budgets?done=set")


def _error_page(req: falcon.asgi.Request, resp: falcon.asgi.Response, status: int, message: str) -> None:
    session = getattr(req.context, "session", None)
    render(
        resp,
        "error.html.j2",
        status,
        status=status,
        title=falcon.code_to_http_status(status)[4:],
        message=message,
        session=session,
    )


def _problem_page(req: falcon.asgi.Request, resp: falcon.asgi.Response, problem: web.Problem) -> None:
    _error_page(req, resp, problem.status, problem.detail)
    if problem.retry_after is not None:
        resp.set_header("Retry-After", str(problem.retry_after))


async def _on_redirect(_req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: dict[str, Any]) -> None:
    assert isinstance(ex, Redirect)  # noqa: S101 - registered for Redirect only
    see_other(resp, ex.location)


ERRORS = web.ErrorPolicy(
    not_found=lambda _req: "there is no such page: start from the queue",
    not_allowed=lambda req, _allowed: f"{req.method} is not allowed here: use the console's links and buttons",
    internal="the console failed on this request; it was logged. Nothing was changed if an action failed.",
    logger=logger,
    unavailable=(psycopg2.OperationalError, psycopg2.InterfaceError, ServiceUnavailable),
    when_unavailable=web.Problem.of(
        503, "the database does not answer: nothing was changed; try again in a moment", retry_after=UNAVAILABLE_RETRY_S
    ),
    render=_problem_page,
)


def _foreign_host() -> web.Problem:
    return web.Problem.of(400, "the console does not answer at this host name: open it at an address in CONSOLE_ALLOWED_HOSTS")


# Request ids are BIGINT: a larger number is no request (404), never an error of the database.
REQUEST_ID = "{request_id:int(min=1, max=9223372036854775807)}"


def create_app(services: Services) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application of the console."""
    app = falcon.asgi.App(middleware=[metrics.HttpMetrics()])
    app.add_middleware(web.AllowedHosts(services.settings.allowed_hosts, _foreign_host))
    app.add_middleware(Sessions(services))
    app.add_middleware(web.SecurityHeaders(SECURITY_HEADERS))
    app.add_route("/", Queue(services))
    app.add_route("/login", Login(services))
    app.add_route("/logout", Logout(services))
    app.add_route(f"/requests/{REQUEST_ID}", Request(services))
    app.add_route(f"/requests/{REQUEST_ID}/{{action}}", Action(services))
    app.add_route("/budgets", Budgets(services))
    app.add_route("/healthz", web.Health(plain=True))
    app.add_static_route("/static", str(HERE / "static"))
    web.add_error_handlers(app, ERRORS)
    app.add_error_handler(Redirect, _on_redirect)
    return app
