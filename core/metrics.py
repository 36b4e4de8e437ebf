"""Prometheus metrics of the long-running services: the exporter, its argument, the HTTP services'
middleware and the scheduled jobs' gauges.

Every service serves its metrics with the standard client (``prometheus_client``) on
``http://METRICS_HOST:P/metrics``, P being its ``--metrics-port``: by default its own port
(``DEFAULT_PORTS``), or none with ``METRICS_ENABLED=false``; 0 turns the exporter off. The
instruments live beside what they measure (``core.sink.metrics`` for the consumers,
``gdpr.metrics`` for the GDPR processor, the HTTP services' and the scheduled jobs' here) in the
client's default registry, so one exporter per process serves them all, with the client's own
process metrics.

Labels are never personal data: no user id, email, IP address, payload or raw path (ids are in
paths), only names the code chooses from a closed set (consumer group, partition, reason, route
template, status code, job name). Counters are incremented per batch or per request, never per
event, so the consumers' hot path does not notice them.
"""

from __future__ import annotations

import argparse
import errno
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from core.config import Settings
from core.errors import ConfigError

if TYPE_CHECKING:  # the consumers import this module too: only the HTTP services load Falcon
    import falcon.asgi

logger = logging.getLogger(__name__)

# No ``*_created`` series beside each counter and histogram: Prometheus 2 does not read them, and
# they would double the series every consumer and HTTP service exposes.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# Each service's default --metrics-port, by the module ``python -m`` runs: distinct, so that all of
# them can run on one machine (the embedded stack) and one Prometheus configuration finds them
# (ops/prometheus/prometheus.yml; tests/unit/test_compose.py checks both against this table).
DEFAULT_PORTS: dict[str, int] = {
    "consumers.store_raw_events": 9101,
    "consumers.streaming_metrics": 9102,
    "gdpr.process_privacy_requests": 9103,
    "collector": 9104,
    "gdpr.api": 9105,
    "console": 9106,
    "scheduler": 9107,
}

# A default port that is taken moves up in steps of this (see fallback_ports).
PORT_STEP = 100
MAX_PORT = 65535

# Request latency of the HTTP services: a page or a 202 takes milliseconds; a collector request
# waits up to COLLECTOR_DELIVERY_TIMEOUT_MS (10 s) for the broker, a privacy request for the mail server.
HTTP_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The methods the services answer; any other word a client sends is counted as "other", so a
# client cannot create series at will.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route of a request that matched none (a 404, or a static file of the console): never its path.
UNMATCHED_ROUTE = "other"
# A field converter in a route template (``{request_id:int(min=1)}``), dropped from its label.
_CONVERTER = re.compile(r"\{(\w+):[^}]*\}")
# Route templates are few and fixed: each one's label is worked out once.
_ROUTE_LABELS: dict[str, str] = {}
# A job name is a label value the scheduler chooses: a short identifier, never anybody's data.
JOB_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")

HTTP_REQUESTS = Counter(
    "platform_http_requests",
    "HTTP requests answered, by route template (never the path itself), method and status code.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "platform_http_request_duration_seconds",
    "Time to answer an HTTP request, from routing to the response, by route template and method.",
    ["route", "method"],
    buckets=HTTP_SECONDS_BUCKETS,
)

JOB_LAST_SUCCESS = Gauge(
    "platform_job_last_success_timestamp_seconds", "When each scheduled job last finished successfully (Unix time).", ["job"]
)
JOB_LAST_RUN = Gauge("platform_job_last_run_timestamp_seconds", "When each scheduled job last finished (Unix time).", ["job"])
JOB_LAST_OUTCOME = Gauge("platform_job_last_outcome", "How each scheduled job's last run ended: 1 succeeded, 0 failed.", ["job"])
JOB_LAST_SECONDS = Gauge("platform_job_last_duration_seconds", "How long each scheduled job's last run took.", ["job"])
JOB_INTERVAL = Gauge(
    "platform_job_interval_seconds",
    "How often each scheduled job is meant to run: a job not run on time is late against twice this.",
    ["job"],
)
RECONCILIATION_DRIFT = Gauge(
    "platform_reconciliation_drift_days",
    "Days on which the last comparison of batch and streaming metrics found a difference (0: they agree).",
)


@dataclass
class Exporter:
    """A running metrics endpoint (a daemon thread of prometheus_client's WSGI server)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and release the port (a process that exits need not call it)."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_exporter(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> Exporter | None:
    """Serve ``registry`` on ``http://host:port/metrics`` in a daemon thread; None when ``port``
    is 0 (metrics off). ConfigError, one line naming what to do, when the port cannot be bound."""
    if port == 0:
        return None
    try:
        server, thread = prometheus_client.start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise ConfigError(
            f"cannot serve metrics on {host}:{port} ({e.strerror or e}): stop what uses it, choose another "
            "--metrics-port, or turn metrics off with --metrics-port 0"
        ) from None
    logger.info("metrics on http://%s:%d/metrics", host, port)
    return Exporter(server, thread)


def port_number(text: str) -> int:
    """argparse type of a --metrics-port: 0 (off) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 turns metrics off)")
    return port


def add_metrics_argument(parser: argparse.ArgumentParser, module: str) -> None:
    """``--metrics-port P``; without it ``module``'s port in DEFAULT_PORTS (see ``serve``)."""
    parser.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="P",
        help="serve Prometheus metrics on http://METRICS_HOST:P/metrics; 0 turns them off "
        f"(default: {DEFAULT_PORTS[module]}, or off with METRICS_ENABLED=false)",
    )


def chosen_port(settings: Settings, module: str, given: int | None) -> int:
    """The port ``module`` serves its metrics on: the --metrics-port ``given``, else its default
    (0, off, when METRICS_ENABLED=false)."""
    if given is not None:
        return given
    return DEFAULT_PORTS[module] if settings.metrics.enabled else 0


def fallback_ports(default: int, retries: int) -> list[int]:
    """Where a service whose default port is taken looks next: the default plus 100, plus 200, ...
    ``retries`` of them (as Spark's UI tries the next ports), within the port numbers. Steps of
    100 keep every service clear of the others' defaults (DEFAULT_PORTS, 9101-9107): a second raw
    sink never takes the streaming consumer's 9102."""
    return [port for port in (default + PORT_STEP * n for n in range(1, retries + 1)) if port <= MAX_PORT]


def serve(settings: Settings, module: str, given: int | None) -> Exporter | None:
    """Start ``module``'s exporter on METRICS_HOST and the chosen port (None when off). A port
    given (--metrics-port) that is taken is an error; the default one that is taken (another
    instance on this host) moves to the first free one of ``fallback_ports``, and the log says
    which."""
    port = chosen_port(settings, module, given)
    if given is not None or port == 0:
        return start_exporter(settings.metrics.host, port)
    host = settings.metrics.host
    tried = [port, *fallback_ports(port, settings.metrics.port_retries)]
    for candidate in tried:
        try:
            server, thread = prometheus_client.start_http_server(candidate, addr=host)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                return start_exporter(host, candidate)  # says why in one line
            continue
        if candidate != port:
            logger.warning("metrics port %d is taken (another instance on this host?): serving on %d instead", port, candidate)
        logger.info("metrics on http://%s:%d/metrics", host, candidate)
        return Exporter(server, thread)
    raise ConfigError(
        f"cannot serve metrics on {host}: the default port {port} and the {len(tried) - 1} tried after it "
        f"({', '.join(map(str, tried[1:])) or 'none'}, METRICS_PORT_RETRIES={settings.metrics.port_retries}) are all "
        "taken: choose a --metrics-port, or turn metrics off with --metrics-port 0"
    )


def route_label(template: str | None) -> str:
    """The label of a route: its template without field converters (``/requests/{request_id}``,
    not ``/requests/{request_id:int(min=1)}``), or UNMATCHED_ROUTE; never a path."""
    if template is None:
        return UNMATCHED_ROUTE
    label = _ROUTE_LABELS.get(template)
    if label is None:
        label = _ROUTE_LABELS[template] = _CONVERTER.sub(r"{\1}", template)
    return label


class HttpMetrics:
    """Falcon (ASGI) middleware counting every request by route template, method and status, and
    timing it. Put it first in the middleware list: its response hook then runs last, after the
    other middleware and the error handlers have set the final status."""

    async def process_request(self, req: falcon.asgi.Request, _resp: falcon.asgi.Response) -> None:
        req.context.metrics_started = time.perf_counter()

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, _resource: object, _req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "metrics_started", None)
        route = route_label(req.uri_template)
        method = req.method if req.method in HTTP_METHODS else "other"
        HTTP_REQUESTS.labels(route, method, str(resp.status_code)).inc()
        if started is not None:
            HTTP_SECONDS.labels(route, method).observe(time.perf_counter() - started)


def _job_label(job: str) -> str:
    if not JOB_NAME.fullmatch(job):
        raise ValueError(f"job name {job!r} is not a short lower-case identifier (letters, digits, _ and -)")
    return job


def expect_job(job: str, every_s: float) -> None:
    """Say how often ``job`` is meant to run, the yardstick of the alert on a job not run on time
    (the scheduler calls it for each job it schedules)."""
    JOB_INTERVAL.labels(_job_label(job)).set(every_s)


def record_job_run(job: str, *, succeeded: bool, started_at: float, finished_at: float) -> None:
    """Record how a run of ``job`` ended (times in Unix seconds): the gauges the alerts on a failed
    or late job read."""
    label = _job_label(job)
    JOB_LAST_RUN.labels(label).set(finished_at)
    JOB_LAST_OUTCOME.labels(label).set(1 if succeeded else 0)
    JOB_LAST_SECONDS.labels(label).set(max(finished_at - started_at, 0.0))
    if succeeded:
        JOB_LAST_SUCCESS.labels(label).set(finished_at)


def record_reconciliation(drift_days: int) -> None:
    """Record how many days the last batch-vs-streaming comparison found drifting (0: none)."""
    if drift_days < 0:
        raise ValueError(f"drift_days must not be negative, got {drift_days}")
    RECONCILIATION_DRIFT.set(drift_days)
