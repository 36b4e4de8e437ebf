"""``python -m dashboard``: serve the live dashboard over HTTP until SIGINT or SIGTERM.

Falcon (ASGI) on uvicorn, like the console and the privacy API: one process, the page rendered on
the server, every database transaction and every Kafka probe in a worker thread so the loop keeps
answering. At start the database must answer as the dashboard_reader login with the tables it reads
(else one line and exit status 2); Kafka may be down (the lag then shows as unknown). It listens on
the loopback by default: it is an internal page, without a login of its own; publish it on a trusted
network only.
"""

from __future__ import annotations

import logging

import psycopg2

from core import db, web
from core.config import Settings
from core.errors import ServiceUnavailable
from dashboard import queries
from dashboard.app import create_app
from dashboard.service import REFRESH_S, Dashboard
from dashboard.store import LOGIN

logger = logging.getLogger(__name__)

# A request in flight gets this long to finish after a stop signal: a summary takes milliseconds,
# or a Kafka probe's timeout.
GRACEFUL_S = 10


def open_dashboard(settings: Settings) -> Dashboard:
    """The dashboard on a database that answers with its tables; ServiceUnavailable (one line,
    naming what to do) when it does not, ConfigError when its login is refused."""
    database = LOGIN.open(settings.database)
    topic, window_s = settings.kafka.topic, settings.analytics_funnel_window_s
    try:
        database.run(lambda cur: queries.read(cur, topic, window_s))
    except psycopg2.Error as e:
        database.close()
        raise ServiceUnavailable(
            f"the dashboard cannot read its tables ({db.describe_error(e)}): apply the migrations with `python -m core.db`"
        ) from e
    return Dashboard(database, settings)


def serve(settings: Settings, host: str, port: int, _metrics_port: int | None = None) -> int:
    """Run the dashboard until stopped; 0 after a clean stop. It serves no metrics of its own."""

    def open_service(_listening: web.Listening) -> web.Service:
        dashboard = open_dashboard(settings)
        summary = f"topic {dashboard.topic}, refreshed every {REFRESH_S} s"
        return web.Service(create_app(dashboard), dashboard.database.close, graceful_s=GRACEFUL_S, summary=summary)

    return web.serve(
        "dashboard", open_service, host=host, port=port, port_setting="DASHBOARD_PORT", http=settings.http, log=logger
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m dashboard``."""
    web.command(
        argv,
        prog="python -m dashboard",
        description=(
            "Serve the live dashboard: today's revenue and funnel (page views, added to cart, purchases), each "
            "consumer group's throughput over the last minutes, lag and freshness, open privacy requests by "
            "deadline, the scheduler's last runs and the last hour's dead letters by reason; refreshed every "
            f"{REFRESH_S} s. GET / (the page), GET /api/summary (JSON), GET /healthz. No personal data; it logs in "
            "as login_dashboard. Settings: DASHBOARD_HOST, DASHBOARD_PORT, DASHBOARD_ALLOWED_HOSTS, "
            "HTTP_HEADER_TIMEOUT_S, HTTP_BODY_TIMEOUT_S, DATABASE_URL, DB_PASSWORD_DASHBOARD, "
            "KAFKA_BOOTSTRAP_SERVERS, EVENTS_TOPIC."
        ),
        prefix="DASHBOARD",
        default_port=8003,
        listens=lambda settings: settings.dashboard,
        serve=serve,
    )
