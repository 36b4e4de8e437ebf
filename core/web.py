"""What the platform's HTTP services (the collector, the privacy API, the DPO console, the
dashboard) share: uvicorn stopped by the platform's stop flag, a listening socket bound before
anything starts, a server configuration that logs no client address, deadlines for a request's
headers and body, the check of the Host header, and the reading of Falcon's own errors (no route,
a wrong method, a malformed request) that each answers in its own shape."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import falcon.asgi
import uvicorn
from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from core.config import HOST_PATTERN
from core.errors import ConfigError

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


def add_listen_arguments(parser: argparse.ArgumentParser, prefix: str, default_port: int) -> None:
    """--host and --port, defaulting to the ``<prefix>_HOST`` and ``<prefix>_PORT`` settings."""
    parser.add_argument("--host", help=f"address to listen on (default: {prefix}_HOST, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help=f"port to listen on, 0 for any free one (default: {prefix}_PORT, {default_port})"
    )


def check_port(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """parser.error() for a --port that is no port number."""
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a port number")


def error_code(ex: falcon.HTTPError, codes: Mapping[int, str]) -> str:
    """The machine-readable code of one of Falcon's errors: the service's own for the statuses it
    names, Falcon's title in snake case otherwise."""
    return codes.get(ex.status_code, ex.title.lower().replace(" ", "_"))


def error_detail(ex: falcon.HTTPError, *, not_found: str, not_allowed: str) -> str:
    """What to say of one of Falcon's errors: the service's words for 404 and 405, Falcon's
    description otherwise."""
    if ex.status_code == 404:
        return not_found
    if ex.status_code == 405:
        return not_allowed
    return ex.description or ex.title


def allowed_methods(ex: falcon.HTTPError) -> list[str]:
    """The methods a 405 says the path allows (its Allow header), OPTIONS left out."""
    allow = dict(ex.headers or {}).get("Allow", "")
    return [m.strip() for m in allow.split(",") if m.strip() and m.strip() != "OPTIONS"]


def copy_error_headers(ex: falcon.HTTPError, resp: falcon.asgi.Response) -> None:
    """The headers Falcon set on its error (Allow on a 405, for one) onto the service's answer."""
    for name, value in dict(ex.headers or {}).items():
        resp.set_header(name, value)


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
