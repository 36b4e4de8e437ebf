"""``python -m analytics.api``: serve the analysts' API over HTTP until SIGINT or SIGTERM.

Falcon (ASGI) on uvicorn, one process, on the shared service code (core.web). At start the
database must answer as the analysts_api role and its accounts table must be readable (else one
line and exit status 2). A stop signal lets every request in flight get its answer; a second
exits at once.
"""

from __future__ import annotations

import logging

import psycopg2

from analytics.api.app import create_app
from analytics.api.service import AnalystsApi
from analytics.api.store import LOGIN
from core import db, web
from core.config import Settings
from core.errors import ServiceUnavailable

logger = logging.getLogger(__name__)


def open_api(settings: Settings) -> AnalystsApi:
    """The API on a database that answers; ServiceUnavailable (one line, naming what to do) when
    it does not."""
    database = LOGIN.open(settings.database)
    try:
        database.run(lambda cur: cur.execute("SELECT count(*) FROM analyst_accounts WHERE false"))
    except psycopg2.Error as e:
        raise ServiceUnavailable(
            f"the analysts' API cannot read its accounts ({db.describe_error(e)}): apply the migrations with `python -m core.db`"
        ) from e
    return AnalystsApi(settings.analysts_api, database, settings.release)


def serve(settings: Settings, host: str, port: int, _metrics_port: int | None = None) -> int:
    """Run the API until stopped; 0 after a clean stop. It serves no metrics of its own yet."""

    def open_service(_listening: web.Listening) -> web.Service:
        api = open_api(settings)
        return web.Service(
            create_app(api),
            api.database.close,
            # A release takes tens of milliseconds; 10 s lets any in flight finish.
            graceful_s=10,
            summary=(
                f"epsilon at most {settings.analysts_api.max_epsilon:g} a release, "
                f"{settings.analysts_api.requests_per_client_per_minute} requests a minute per client"
            ),
        )

    return web.serve(
        "analysts' API",
        open_service,
        host=host,
        port=port,
        port_setting="ANALYSTS_API_PORT",
        http=settings.http,
        log=logger,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m analytics.api``."""
    web.command(
        argv,
        prog="python -m analytics.api",
        description=(
            "Serve the analysts' API: figures about people released with differential privacy, each with its 95 %"
            " interval and the budget left, for analysts (GET /v1/kpis/daily-by-country, /v1/funnel, /v1/retention,"
            " /v1/rfm/segments, /v1/clv/segments, each with epsilon=...), and the budgets and the privacy ledger for"
            " the DPO (GET /v1/budgets, /v1/ledger), behind 'Authorization: Bearer <token>' (python -m"
            " analytics.accounts create). GET /openapi.json describes it; GET /healthz. Connects as"
            " login_analysts_api (DB_PASSWORD_ANALYSTS_API). Settings: ANALYSTS_API_HOST, ANALYSTS_API_PORT,"
            " ANALYSTS_API_MAX_EPSILON, ANALYSTS_API_MAX_DAYS, ANALYSTS_API_REQUESTS_PER_CLIENT_PER_MINUTE,"
            " ANALYSTS_API_RETRY_AFTER_S, DATABASE_URL."
        ),
        prefix="ANALYSTS_API",
        default_port=8004,
        listens=lambda settings: settings.analysts_api,
        serve=serve,
    )
