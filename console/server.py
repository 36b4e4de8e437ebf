"""``python -m console``: serve the DPO console over HTTP until SIGINT or SIGTERM.

Falcon (ASGI) on uvicorn, like the collector: one process, pages rendered on the server, every
database transaction and password hash in a worker thread so the loop keeps answering. ASGI
rather than WSGI so the platform's web services share one server, one way of stopping and one
set of measurements. At start the database must answer with the console's tables (else one
line and exit status 2) and GDPR_HMAC_KEY must be usable (denials and holds need the proof
hashes). It listens on the loopback by default: it is an internal tool; behind TLS set
CONSOLE_SECURE_COOKIES=true.
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import datetime

import psycopg2

from console import auth
from console.app import Services, create_app
from console.store import LOGIN
from core import db, metrics, web
from core.config import Settings
from core.errors import ServiceUnavailable
from gdpr import actions, mail

logger = logging.getLogger(__name__)

# A request in flight gets this long to finish after a stop signal: pages take milliseconds.
GRACEFUL_S = 5


def open_services(settings: Settings) -> Services:
    """The pool, the hasher and the brake; ServiceUnavailable when the database or its console
    tables do not answer, ConfigError when GDPR_HMAC_KEY cannot be used."""
    key = settings.gdpr_hmac_key
    database = LOGIN.open(settings.database)
    try:
        accounts = database.run(auth.count_enabled)
    except psycopg2.Error as e:
        database.close()
        raise ServiceUnavailable(
            f"cannot read the DPO accounts ({db.describe_error(e)}): apply the migrations with `python -m core.db`"
        ) from e
    if accounts == 0:
        logger.warning("no enabled DPO account: create one with `python -m console.accounts create NAME`")

    def tell(who: actions.Requester, decision: str, reason: str, due_at: datetime | None) -> bool:
        return mail.tell_decision_or_log(
            settings, who.email, request_id=who.request_id, request_type=who.request_type, decision=decision,
            reason=reason, due_at=due_at,
        )  # fmt: skip

    return Services(database, auth.Passwords(), auth.Throttle(), settings.console, key, settings.consent_mode, tell)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(settings: Settings, host: str, port: int, metrics_port: int | None = None) -> int:
    """Run the console until stopped; 0 after a clean stop."""

    def open_service(listening: web.Listening) -> web.Service:
        services = open_services(settings)
        metrics.serve(settings, "console", metrics_port)
        if not _loopback(listening.host) and not settings.console.secure_cookies:
            logger.warning(
                "listening beyond the loopback with CONSOLE_SECURE_COOKIES=false: serve it behind TLS and set it to true"
            )
        summary = f"sessions of {settings.console.session_hours} h"
        return web.Service(create_app(services), services.database.close, graceful_s=GRACEFUL_S, summary=summary)

    return web.serve("console", open_service, host=host, port=port, port_setting="CONSOLE_PORT", http=settings.http, log=logger)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m console``."""
    web.command(
        argv,
        prog="python -m console",
        description=(
            "Serve the DPO console: sign in (accounts from `python -m console.accounts create NAME`), the queue of "
            "privacy requests with their deadlines, each request's audit timeline, and the DPO's actions (verify, "
            "deny, extend, legal hold, release, lift a restriction). Settings: CONSOLE_HOST, CONSOLE_PORT, "
            "CONSOLE_SESSION_HOURS, CONSOLE_SECURE_COOKIES, CONSOLE_ALLOWED_HOSTS, HTTP_HEADER_TIMEOUT_S, "
            "HTTP_BODY_TIMEOUT_S, DATABASE_URL, GDPR_HMAC_KEY, CONSENT_MODE."
        ),
        prefix="CONSOLE",
        default_port=8002,
        listens=lambda settings: settings.console,
        serve=serve,
        metrics_name="console",
    )
