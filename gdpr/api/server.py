"""``python -m gdpr.api``: serve the privacy-request API over HTTP until SIGINT or SIGTERM.

Falcon (ASGI) on uvicorn with uvloop and httptools, one process, like the collector but a service
of its own: people file requests here, and it holds no key of the collector's. At start the
database must answer as the privacy_api role and GDPR_HMAC_KEY must be usable (else one line and
exit status 2); a mail server that is down is reported by /readyz and answered 503 per request,
so the API starts before it. A stop signal stops accepting connections and lets every request in
flight get its answer (each waits at most SMTP_TIMEOUT_S for the mail server); a second signal
exits at once. uvicorn's own signal handling is replaced by the platform's (``core.cli``).
"""

from __future__ import annotations

import logging
import math

import psycopg2

from core import db, metrics, web
from core.config import Settings
from core.errors import ServiceUnavailable
from gdpr.api.app import create_app
from gdpr.api.service import PrivacyApi
from gdpr.api.store import LOGIN

logger = logging.getLogger(__name__)

# Pending connections the kernel holds while the loop is busy.
BACKLOG = 1024


def open_api(settings: Settings) -> PrivacyApi:
    """The API on a database that answers; ServiceUnavailable (one line, naming what to do) when
    it does not, ConfigError when GDPR_HMAC_KEY cannot be used."""
    database = LOGIN.open(settings.database)
    try:
        database.run(lambda cur: cur.execute("SELECT count(*) FROM privacy_verifications WHERE false"))
    except psycopg2.Error as e:
        raise ServiceUnavailable(
            f"the privacy API cannot read its tables ({db.describe_error(e)}): apply the migrations with `python -m core.db`"
        ) from e
    return PrivacyApi(settings, database)


def serve(settings: Settings, host: str, port: int, metrics_port: int | None = None) -> int:
    """Run the API until stopped; 0 after a clean stop."""

    def open_service(_listening: web.Listening) -> web.Service:
        api = open_api(settings)
        metrics.serve(settings, "gdpr.api", metrics_port)
        return web.Service(
            create_app(api),
            api.database.close,
            # A request in flight waits at most the SMTP timeout (per step) for the mail server.
            graceful_s=math.ceil(settings.mail.timeout_s) * 3 + 5,
            summary=(
                f"mail via {settings.mail.display}, codes valid {settings.privacy_api.code_ttl_s} s with"
                f" {settings.privacy_api.max_attempts} tries, {settings.privacy_api.requests_per_address_per_hour}"
                " requests an hour per address"
            ),
        )

    return web.serve(
        "privacy API",
        open_service,
        host=host,
        port=port,
        port_setting="PRIVACY_API_PORT",
        http=settings.http,
        backlog=BACKLOG,
        uvloop_loop=True,
        log=logger,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m gdpr.api``."""
    web.command(
        argv,
        prog="python -m gdpr.api",
        description=(
            "Serve the privacy-request API for data subjects: POST /v1/privacy-requests {email, type} files an "
            "erasure, access, rectification, restriction or objection request and mails a one-time code to the "
            "address; POST /v1/privacy-requests/{id}/verify {code} with 'Authorization: Bearer <secret>' makes it "
            "pending for the GDPR processor; GET /v1/privacy-requests/{id} shows its status and due date; GET "
            "/v1/privacy-requests/{id}/export downloads an access export, once. GET /healthz and GET /readyz. "
            "Settings: PRIVACY_API_HOST, PRIVACY_API_PORT, PRIVACY_API_PUBLIC_URL, PRIVACY_API_MAX_BODY_BYTES, "
            "PRIVACY_API_REQUESTS_PER_ADDRESS_PER_HOUR, PRIVACY_API_REQUESTS_PER_CLIENT_PER_MINUTE, "
            "PRIVACY_API_RETRY_AFTER_S, VERIFICATION_CODE_TTL_S, VERIFICATION_MAX_ATTEMPTS, ACCESS_EXPORT_DAYS, "
            "SMTP_HOST, SMTP_PORT, SMTP_FROM, SMTP_USER, SMTP_PASSWORD, SMTP_STARTTLS, SMTP_TIMEOUT_S, "
            "GDPR_HMAC_KEY, DATABASE_URL, REPORTS_DIR."
        ),
        prefix="PRIVACY_API",
        default_port=8001,
        listens=lambda settings: settings.privacy_api,
        serve=serve,
        metrics_name="gdpr.api",
    )
