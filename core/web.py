"""The kit of the platform's HTTP services (the collector, the privacy API, the DPO console, the
dashboard): a service is its routes and its policy, the rest is here.

- ``Problem``: the one error a handler raises to refuse a request, answered by
  ``add_error_handlers`` in the service's shape (JSON ``{"error", "detail", ...}`` or a page),
  with Falcon's own errors (no route, a wrong method, a malformed request), the database being
  down, and an unforeseen defect (logged by its type alone) answered the same way;
- ``SecurityHeaders``: the service's header policy on every answer; ``Health``: ``GET /healthz``;
- ``serve``: the listening socket bound before anything starts, the platform's stop flag (a
  second Ctrl+C exits at once), uvicorn configured to log no client address, with deadlines for a
  request's headers and body (``TimedProtocol``), and the service closed after its last answer;
- the check of the Host header (``AllowedHosts``) and the counting of clients (``client_key``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import falcon
import falcon.asgi
import msgspec
import uvicorn
import uvloop
from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from core import cli, metrics
from core.config import HOST_PATTERN, HttpSettings, Settings
from core.errors import ConfigError

logger = logging.getLogger(__name__)

App = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]
JSON = "application/json"
_ENCODER = msgspec.json.Encoder()

# An IPv6 client counts by its /64 network: one host is usually given a whole /64, and could
# otherwise change address per request.
IPV6_PREFIX = 64


def client_key(remote_addr: str) -> str:
    """What one client is counted as by a rate limit: its IPv4 address, or its IPv6 /64 network.
    Kept in memory only, never logged or stored."""
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return remote_addr
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network((address, IPV6_PREFIX), strict=False))
    return str(address)


class StoppableServer(uvicorn.Server):
    """uvicorn's server, stopped by the platform's stop flag instead of its own signal handlers."""

    def __init__(self, config: uvicorn.Config, stop: threading.Event) -> None:
        super().__init__(config)
        self.stop = stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # core.cli.install_stop_handlers owns SIGINT and SIGTERM

    async def on_tick(self, counter: int) -> bool:
        should_exit = await super().on_tick(counter)
        return should_exit or self.stop.is_set()


def listen(host: str, port: int, port_setting: str, backlog: int | None = None) -> socket.socket:
    """The listening socket, bound before anything else starts; ConfigError naming
    ``port_setting`` (e.g. COLLECTOR_PORT) when it cannot be."""
    try:
        if backlog is None:
            return socket.create_server((host, port))
        return socket.create_server((host, port), backlog=backlog)
    except OSError as e:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({e.strerror}): stop what uses it, or choose --port / {port_setting}"
        ) from e


class TimedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the two deadlines uvicorn lacks (it has a keep-alive
    timeout only, so a client sending a header line every few seconds held a connection for
    ever): a request's headers must arrive within ``header_timeout_s`` of its first byte (or of
    the connection's opening), its body within ``body_timeout_s`` of its headers' end.

    Late headers: the client is answered 408 with a JSON reason (or, having sent nothing, the
    connection is closed) and the connection closed. A late body: the application's next read
    of it raises falcon's 408, which the service answers in its own shape, and the connection is
    closed after it; the application never sees a body cut short as if it were whole. Subclassed
    per server with its deadlines by ``timed_protocol``."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._begun = False  # bytes of a request whose headers have not ended
        self._late_cycle: RequestResponseCycle | None = None  # the request whose body is late

    def _arm(self, seconds: float, late: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._deadline is None:  # else the connection's first deadline runs on
            self._arm(self.header_timeout_s, self._headers_late)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._begun = False
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope and cycle.more_body:
            self._deadline = self.loop.call_later(self.body_timeout_s, self._body_late, cycle)
            self._guard_reads(cycle)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # The answer to an earlier request (pipelined) is under way: it ends the connection.
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        if self._begun:
            self._answer_408(f"the request's headers did not arrive within {self.header_timeout_s:g} s")
        self.transport.close()

    def _body_late(self, cycle: RequestResponseCycle) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if cycle.response_started:
            # Answered before the body was read (a refusal): nothing more is read from the client.
            cycle.keep_alive = False
            if cycle.response_complete:
                self.transport.close()
            return
        self._late_cycle = cycle
        cycle.keep_alive = False
        self.flow.pause_reading()
        cycle.message_event.set()  # wakes a read in progress

    def _guard_reads(self, cycle: RequestResponseCycle) -> None:
        """Makes the application's reads of ``cycle``'s body raise a 408 once its body is late."""
        read = cycle.receive
        limit = self.body_timeout_s

        async def receive() -> ASGIReceiveEvent:
            if self._late_cycle is not cycle:
                message = await read()
                if self._late_cycle is not cycle:
                    return message
            raise falcon.HTTPError(
                falcon.HTTP_408,
                title="Request Timeout",
                description=f"the request's body did not arrive within {limit:g} s",
                headers={"Connection": "close"},
            )

        cycle.receive = receive  # type: ignore[method-assign]

    def _answer_408(self, detail: str) -> None:
        body = json.dumps({"error": "request_timeout", "detail": detail}).encode()
        head = [
            b"HTTP/1.1 408 Request Timeout",
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)


def timed_protocol(header_timeout_s: float, body_timeout_s: float) -> type[TimedProtocol]:
    """``TimedProtocol`` with these deadlines, for uvicorn's ``http`` option."""
    return type("TimedProtocol", (TimedProtocol,), {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s})


def config(app: Any, *, graceful_s: int, header_timeout_s: float, body_timeout_s: float, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration for one of our services: no access log (it writes each client's IP
    address, personal data), no proxy headers, no server header, no lifespan or websockets; HTTP
    by httptools with deadlines for each request's headers and body (``TimedProtocol``)."""
    options: dict[str, Any] = {
        "http": timed_protocol(header_timeout_s, body_timeout_s),
        "ws": "none",
        "lifespan": "off",
        "access_log": False,
        "proxy_headers": False,
        "log_config": None,
        "server_header": False,
        "timeout_graceful_shutdown": graceful_s,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)


async def read_body(req: falcon.asgi.Request, limit: int, too_large: Callable[[int], Exception]) -> bytes:
    """The whole body, refused with ``too_large(limit)`` as soon as it is known to exceed
    ``limit`` bytes: from Content-Length before reading, and while reading a chunked body without one."""
    length = req.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def allowed_methods(ex: falcon.HTTPError) -> list[str]:
    """The methods a 405 says the path allows (its Allow header), OPTIONS left out."""
    allow = dict(ex.headers or {}).get("Allow", "")
    return [m.strip() for m in allow.split(",") if m.strip() and m.strip() != "OPTIONS"]


def host_allowed(header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request's Host header names one of ``allowed``: a host listed without a port
    with any port, one listed with a port with that port only, anything when ``*`` is listed."""
    allowed = tuple(allowed)
    if "*" in allowed:
        return True
    match = HOST_PATTERN.fullmatch((header or "").strip().lower())
    if match is None:
        return False
    return match["name"] in allowed or match[0] in allowed


class AllowedHosts:
    """Falcon middleware refusing a request whose Host header is not one of ``hosts``, first of
    all: a page of any site whose name an attacker points at 127.0.0.1 (DNS rebinding) sends its
    own name as the host. ``refuse`` makes the service's own 400 of the host."""

    def __init__(self, hosts: Iterable[str], refuse: Callable[[], Exception]) -> None:
        self.hosts = tuple(hosts)
        self.refuse = refuse

    async def process_request(self, req: falcon.asgi.Request, _resp: falcon.asgi.Response) -> None:
        if not host_allowed(req.get_header("Host"), self.hosts):
            raise self.refuse()


# -- problems: what a service refuses, and how it answers -----------------------------------------


class Problem(Exception):
    """A request refused, as problem details (RFC 9457) in the platform's long-standing shape: its
    HTTP ``status``, a stable ``code`` a client can branch on (the ``"error"`` member), a ``detail``
    a person can act on, and any ``extra`` members (``attempts_left``). It never quotes personal
    data. ``retry_after`` (seconds) becomes the Retry-After header: set for 429 and 503, after
    which sending the same request again later is the right thing to do."""

    def __init__(
        self, status: int, code: str, detail: str, *, retry_after: int | None = None, extra: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.extra = dict(extra or {})

    @classmethod
    def of(cls, status: int, detail: str, *, retry_after: int | None = None) -> Problem:
        """A problem whose code is its status's reason phrase (``too_many_requests``): for a
        service whose answers are pages a person reads rather than JSON a program branches on."""
        phrase = falcon.code_to_http_status(status)[4:]
        return cls(status, phrase.lower().replace(" ", "_").replace("-", "_"), detail, retry_after=retry_after)

    def body(self) -> dict[str, Any]:
        """The JSON answer: ``{"error": code, "detail": detail, **extra}``."""
        return {"error": self.code, "detail": self.detail, **self.extra}


def answer_json(resp: falcon.asgi.Response, status: int, body: object, retry_after: int | None = None) -> None:
    """``body`` as the JSON answer, with its Retry-After header when ``retry_after`` is set."""
    resp.status = status
    resp.content_type = JSON
    resp.data = _ENCODER.encode(body)
    if retry_after is not None:
        resp.set_header("Retry-After", str(retry_after))


def problem_json(_req: falcon.asgi.Request, resp: falcon.asgi.Response, problem: Problem) -> None:
    """A problem answered as JSON (the default ``ErrorPolicy.render``)."""
    answer_json(resp, problem.status, problem.body(), problem.retry_after)


def type_name(ex: BaseException) -> str:
    """What the log says of a defect by default: its type alone (its message or traceback may
    quote the request's data)."""
    return type(ex).__name__


@dataclass(frozen=True)
class ErrorPolicy:
    """How one service answers what it refuses and what fails; ``add_error_handlers`` applies it.

    ``not_found`` and ``not_allowed`` are its words for Falcon's 404 and 405 (``not_allowed``
    given the methods the path allows); ``codes`` its code words for Falcon's other statuses
    (else Falcon's title in snake case); ``internal`` the detail of a defect's 500. The
    exceptions in ``unavailable`` (the database not answering) are answered with the problem
    ``when_unavailable`` and logged as a warning. ``render`` writes a problem (JSON by default; the
    console renders a page); ``describe`` says what the log names of a failure (its type by
    default); ``logger`` is the service's own."""

    not_found: Callable[[falcon.asgi.Request], str]
    not_allowed: Callable[[falcon.asgi.Request, list[str]], str]
    internal: str
    logger: logging.Logger
    codes: Mapping[int, str] = field(default_factory=dict)
    unavailable: tuple[type[Exception], ...] = ()
    when_unavailable: Problem | None = None
    render: Callable[[falcon.asgi.Request, falcon.asgi.Response, Problem], None] = problem_json
    describe: Callable[[BaseException], str] = type_name


def _route(req: falcon.asgi.Request) -> str:
    """The request's route for a log line: its template (no id, no address), never its path."""
    return req.uri_template or "(no route)"


def add_error_handlers(app: App, policy: ErrorPolicy) -> None:
    """Every error of ``app`` answered by ``policy``: a ``Problem`` as it says, Falcon's own errors
    as problems (their headers, Allow on a 405, kept), the database down as a 503, and anything
    else as a 500 logged by what ``policy.describe`` says of it, never by its message or traceback."""

    async def on_problem(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: Any) -> None:
        assert isinstance(ex, Problem)  # noqa: S101 - registered for Problem only
        policy.render(req, resp, ex)

    async def on_http_error(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: Any) -> None:
        assert isinstance(ex, falcon.HTTPError)  # noqa: S101 - registered for HTTPError only
        if ex.status_code == 404:
            detail = policy.not_found(req)
        elif ex.status_code == 405:
            detail = policy.not_allowed(req, allowed_methods(ex))
        else:
            detail = ex.description or ex.title
        code = policy.codes.get(ex.status_code, ex.title.lower().replace(" ", "_"))
        policy.render(req, resp, Problem(ex.status_code, code, detail))
        for name, value in dict(ex.headers or {}).items():
            resp.set_header(name, value)

    async def on_unavailable(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: Any) -> None:
        assert policy.when_unavailable is not None  # noqa: S101 - registered only with it
        policy.logger.warning("database unavailable while answering %s %s: %s", req.method, _route(req), policy.describe(ex))
        policy.render(req, resp, policy.when_unavailable)

    async def on_defect(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: BaseException, _params: Any) -> None:
        policy.logger.error("unforeseen %s while answering %s %s", policy.describe(ex), req.method, _route(req))
        policy.render(req, resp, Problem(500, "internal_error", policy.internal))

    app.add_error_handler(Exception, on_defect)
    if policy.when_unavailable is not None:
        for kind in policy.unavailable:
            app.add_error_handler(kind, on_unavailable)
    app.add_error_handler(falcon.HTTPError, on_http_error)
    app.add_error_handler(Problem, on_problem)


# -- headers and health ---------------------------------------------------------------------------


class SecurityHeaders:
    """Falcon middleware setting a service's header policy (Content-Security-Policy, framing,
    caching...) on every answer, errors included. A header named in ``overridable`` is a
    default: a resource may set its own (the dashboard's page, its script's hash in its policy)."""

    def __init__(self, policy: Mapping[str, str], *, overridable: Iterable[str] = ()) -> None:
        self.policy = dict(policy)
        self.overridable = frozenset(overridable)

    async def process_response(
        self, _req: falcon.asgi.Request, resp: falcon.asgi.Response, _resource: object, _req_succeeded: bool
    ) -> None:
        for name, value in self.policy.items():
            if name not in self.overridable or resp.get_header(name) is None:
                resp.set_header(name, value)


class Health:
    """``GET /healthz``: the process answers (a liveness probe; it asks nothing else), with
    ``{"status": "ok"}``, or ``ok`` as plain text when ``plain``."""

    def __init__(self, *, plain: bool = False) -> None:
        self.plain = plain

    async def on_get(self, _req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        if self.plain:
            resp.content_type = "text/plain; charset=utf-8"
            resp.text = "ok\n"
        else:
            answer_json(resp, 200, {"status": "ok"})


# -- serving --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listening:
    """What a service is given as it opens: the stop flag (set by SIGINT or SIGTERM, or by the
    service itself to stop), and the address its socket is bound to."""

    stop: threading.Event
    host: str
    port: int


@dataclass(frozen=True)
class Service:
    """One HTTP service, opened, for ``serve``: its application; ``close`` (flush, close the pool)
    once the last answer is sent; how long a request in flight may take after a stop signal
    (``graceful_s``); the tasks it runs beside the server on its loop (``background``); what the
    line saying it listens adds (``summary``); and its exit status once stopped."""

    app: App
    close: Callable[[], None]
    graceful_s: int
    summary: str
    background: Callable[[], Iterable[Coroutine[Any, Any, None]]] = lambda: ()
    exit_status: Callable[[], int] = lambda: 0


def serve(
    name: str,
    open_service: Callable[[Listening], Service],
    *,
    host: str,
    port: int,
    port_setting: str,
    http: HttpSettings,
    backlog: int | None = None,
    uvloop_loop: bool = False,
    log: logging.Logger = logger,
) -> int:
    """Serve until stopped; the service's exit status after a clean stop.

    The socket is bound first (ConfigError naming ``port_setting`` when it cannot be), then the
    platform's stop handlers are installed (a first SIGINT or SIGTERM lets every request in flight
    get its answer, a second exits at once), then the service opens (one line and exit status 2,
    by ``core.cli.run``, when what it needs does not answer). uvicorn's own signal handling is
    replaced: it re-raises the signal once stopped, and SIGTERM's default action would end the
    process before the service is closed. ``uvloop_loop``: the faster event loop, for the services
    that answer programs at volume."""
    sock = listen(host, port, port_setting, backlog)
    stop = cli.install_stop_handlers()
    bound_host, bound_port = sock.getsockname()[:2]
    service = open_service(Listening(stop, bound_host, bound_port))
    log.info("%s listening on http://%s:%d (%s)", name, bound_host, bound_port, service.summary)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop_loop else None) as runner:
        runner.run(_run(service, sock, stop, http, backlog))
    log.info("%s stopped", name)
    return service.exit_status()


async def _run(service: Service, sock: socket.socket, stop: threading.Event, http: HttpSettings, backlog: int | None) -> None:
    options: dict[str, Any] = {} if backlog is None else {"backlog": backlog}
    server_config = config(
        service.app,
        graceful_s=service.graceful_s,
        header_timeout_s=http.header_timeout_s,
        body_timeout_s=http.body_timeout_s,
        **options,
    )
    background = [asyncio.create_task(work) for work in service.background()]
    try:
        await StoppableServer(server_config, stop).serve(sockets=[sock])
    finally:
        for task in background:
            task.cancel()
        service.close()


class Listens(Protocol):
    """A service's settings section with the address it listens on (``COLLECTOR_HOST``...)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


def command(
    argv: list[str] | None,
    *,
    prog: str,
    description: str,
    prefix: str,
    default_port: int,
    listens: Callable[[Settings], Listens],
    serve: Callable[[Settings, str, int, int | None], int],
    metrics_name: str | None = None,
) -> None:
    """A service's command line: ``--host`` and ``--port`` (defaulting to the ``<prefix>_HOST``
    and ``<prefix>_PORT`` settings), ``--metrics-port`` when it serves metrics as
    ``metrics_name``, then ``serve(settings, host, port, metrics_port)`` under ``core.cli.run``
    (settings loaded, logging set up, an expected failure one line and exit status 2)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", help=f"address to listen on (default: {prefix}_HOST, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help=f"port to listen on, 0 for any free one (default: {prefix}_PORT, {default_port})"
    )
    if metrics_name is not None:
        metrics.add_metrics_argument(parser, metrics_name)
    args = parser.parse_args(argv)
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a port number")

    def start(settings: Settings) -> int:
        section = listens(settings)
        host = section.host if args.host is None else args.host
        port = section.port if args.port is None else args.port
        return serve(settings, host, port, getattr(args, "metrics_port", None))

    cli.run(start)
