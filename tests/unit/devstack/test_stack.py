"""The embedded stack takes a free port when a default one is taken, and keeps the ports it
chose for its data dir: a stack that moved would leave running consumers on the old URL."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from core.errors import StackError
from devstack.stack import HOST, PORTS_FILE, choose_port, free_port, recorded_ports


def listening() -> socket.socket:
    """A socket listening on a free port: somebody else's server."""
    busy = socket.socket()
    busy.bind((HOST, 0))
    busy.listen()
    return busy


def test_taken_default_port_falls_back_to_a_free_one_and_records_it(tmp_path: Path) -> None:
    with listening() as busy:
        taken = busy.getsockname()[1]
        chosen = choose_port(tmp_path, "POSTGRES_PORT", None, taken)
        assert chosen != taken
        with socket.socket() as probe:
            probe.bind((HOST, chosen))
    assert recorded_ports(tmp_path) == {"POSTGRES_PORT": chosen}


def test_the_recorded_port_is_kept_when_the_default_is_free_again(tmp_path: Path) -> None:
    with listening() as busy:
        default = busy.getsockname()[1]
        chosen = choose_port(tmp_path, "POSTGRES_PORT", None, default)
    # The default is free now (after a crash, or `make down` and `make up`): the stack stays put.
    assert choose_port(tmp_path, "POSTGRES_PORT", None, default) == chosen


def test_a_recorded_port_taken_by_someone_else_is_an_error_naming_the_port_and_the_file(tmp_path: Path) -> None:
    with listening() as busy:
        port = busy.getsockname()[1]
        (tmp_path / PORTS_FILE).write_text(f"POSTGRES_PORT={port}\n")
        with pytest.raises(StackError) as raised:
            choose_port(tmp_path, "POSTGRES_PORT", None, free_port())
    message = str(raised.value)
    assert f"port {port}" in message and str(tmp_path / PORTS_FILE) in message and "delete" in message
    assert "\n" not in message
    assert recorded_ports(tmp_path) == {"POSTGRES_PORT": port}


def test_free_default_port_is_kept_and_an_explicit_port_wins(tmp_path: Path) -> None:
    port = free_port()
    assert choose_port(tmp_path, "KAFKA_PORT", None, port) == port
    assert choose_port(tmp_path, "POSTGRES_PORT", 1234, port) == 1234
    assert recorded_ports(tmp_path) == {"KAFKA_PORT": port, "POSTGRES_PORT": 1234}


def test_a_garbled_ports_file_is_an_error_not_a_silent_move(tmp_path: Path) -> None:
    (tmp_path / PORTS_FILE).write_text("POSTGRES_PORT=five\n")
    with pytest.raises(StackError, match="not a port: delete the file"):
        choose_port(tmp_path, "POSTGRES_PORT", None, free_port())
