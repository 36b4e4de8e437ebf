"""What the platform's HTTP services (the collector, the privacy API, the DPO console) share:
uvicorn stopped by the platform's stop flag, a listening socket bound before anything starts,
and a server configuration that logs no client address."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from core.errors import ConfigError


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
