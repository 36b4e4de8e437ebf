"""What the platform's HTTP services (the collector, the privacy API, the DPO console, the
dashboard) share: uvicorn stopped by the platform's stop flag, a listening socket bound before
anything starts, a server configuration that logs no client address, and the reading of Falcon's
own errors (no route, a wrong method, a malformed request) that each answers in its own shape."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import falcon.asgi
import uvicorn

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


def config(app: Any, *, graceful_s: int, **overrides: Any) -> uvicorn.Config:
    """uvicorn's configuration for one of our services: no access log (it writes each client's IP
    address, personal data), no proxy headers, no server header, no lifespan or websockets."""
    options: dict[str, Any] = {
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
