"""``python -m collector``: serve the collector over HTTP until SIGINT or SIGTERM.

Falcon (ASGI) on uvicorn with uvloop and httptools, one process; run one per core behind the load
balancer for more. At start the broker, the topic and the database must answer (else one line
and exit status 2). A stop signal stops accepting connections, lets every request in flight get
its answer (each waits at most COLLECTOR_DELIVERY_TIMEOUT_MS for the broker), then flushes the
producer; a second signal exits at once. uvicorn's own signal handling is replaced by the
platform's (``core.cli``): uvicorn re-raises the signal once it has stopped, and SIGTERM's default
action would end the process before the producer is flushed.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
from typing import Any

import psycopg2
from confluent_kafka import KafkaException

from collector import auth
from collector.app import create_app
from collector.auth import KeyRing
from collector.delivery import Delivery
from collector.service import Collector
from collector.store import LOGIN
from core import db, kafka, metrics, web
from core.config import Settings
from core.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

# After the last request is answered, what is still queued gets this long to reach the broker.
FLUSH_TIMEOUT_S = 10.0
# Pending connections the kernel holds while the loop is busy: bursts of many clients at once.
BACKLOG = 2048
# Allocations between two young-generation collections (CPython's default: 700).
GC_THRESHOLD = 20_000


def open_collector(settings: Settings, stop: threading.Event) -> Collector:
    """Connect to the broker and the database and load the write keys; ServiceUnavailable (one
    line, naming what to start) when either does not answer or the topic does not exist. A
    producer that fails for good sets ``stop``."""
    # All topics' metadata, not the topic's own: asking for one topic by name makes a broker that
    # auto-creates topics (Tansu, Kafka's default) create it, with the wrong partition count.
    try:
        metadata: Any = kafka.ensure_reachable(settings.kafka).list_topics(timeout=kafka.REACHABLE_TIMEOUT_S)
    except KafkaException as e:
        raise ServiceUnavailable(
            f"Kafka at {settings.kafka.bootstrap_servers} did not list its topics: {kafka.START_HINT}"
        ) from e
    if settings.kafka.topic not in metadata.topics:
        raise ServiceUnavailable(
            f"topic {settings.kafka.topic} does not exist on {settings.kafka.bootstrap_servers}: "
            "create it with `python -m core.init` or set EVENTS_TOPIC"
        )
    database = LOGIN.open(settings.database)
    try:
        live, revoked = database.run(auth.load_keys)
    except psycopg2.Error as e:
        raise ServiceUnavailable(
            f"cannot read the write keys ({db.describe_error(e)}): apply the migrations with `python -m core.db`"
        ) from e
    delivery = Delivery(settings.kafka, settings.collector.delivery_timeout_ms, on_fatal=lambda _reason: stop.set())
    return Collector(settings.collector, delivery, database, KeyRing(live, revoked))


def serve(settings: Settings, host: str, port: int, metrics_port: int | None = None) -> int:
    """Run the collector until stopped; 0 after a clean stop, 1 when the producer failed for good."""

    def open_service(listening: web.Listening) -> web.Service:
        collector = open_collector(settings, listening.stop)
        metrics.serve(settings, "collector", metrics_port)
        # Each request allocates thousands of short-lived objects (decoded events, their metadata):
        # with the default threshold (700) a profile under load found 13 % of the event loop's time
        # in the garbage collector; with start-up's objects frozen and this threshold, under 1 %.
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD)

        def close() -> None:
            # Blocking, on purpose: the server has stopped, and the flush's delivery callbacks must
            # run on this loop's thread.
            collector.delivery.close(FLUSH_TIMEOUT_S)
            collector.database.close()

        return web.Service(
            create_app(collector),
            close,
            # Requests in flight wait at most the delivery timeout for the broker.
            graceful_s=math.ceil(collector.settings.delivery_timeout_ms / 1000) + 5,
            summary=(
                f"topic {settings.kafka.topic}, {len(collector.keys)} write keys, {settings.collector.max_events} events"
                f" or {settings.collector.max_body_bytes} bytes per request"
            ),
            background=lambda: [collector.refresh_keys(), collector.delivery.poll_forever()],
            exit_status=lambda: 1 if collector.delivery.fatal else 0,
        )

    return web.serve(
        "collector",
        open_service,
        host=host,
        port=port,
        port_setting="COLLECTOR_PORT",
        http=settings.http,
        backlog=BACKLOG,
        uvloop_loop=True,
        log=logger,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m collector``."""
    web.command(
        argv,
        prog="python -m collector",
        description=(
            "Serve the HTTP event collector: POST /v1/events (one JSON event, a JSON array, or NDJSON) and "
            "POST /v1/consent with a write key (python -m collector.keys), GET /healthz and GET /readyz. "
            "Events are validated one by one and answered 202 only once the broker has acknowledged them. "
            "Settings: COLLECTOR_MAX_EVENTS, COLLECTOR_MAX_BODY_BYTES, COLLECTOR_DELIVERY_TIMEOUT_MS, "
            "COLLECTOR_KEY_REFRESH_S, COLLECTOR_RETRY_AFTER_S, COLLECTOR_CLIENT_RATE_PER_S, HTTP_HEADER_TIMEOUT_S, "
            "HTTP_BODY_TIMEOUT_S, KAFKA_BOOTSTRAP_SERVERS, EVENTS_TOPIC, DATABASE_URL."
        ),
        prefix="COLLECTOR",
        default_port=8000,
        listens=lambda settings: settings.collector,
        serve=serve,
        metrics_name="collector",
    )
