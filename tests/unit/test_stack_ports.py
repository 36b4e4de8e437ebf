"""The embedded stack takes a free port when a default one is taken."""

from __future__ import annotations

import socket

from core.stack import HOST, _choose_port, free_port


def test_taken_default_port_falls_back_to_a_free_one() -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        chosen = _choose_port(None, taken)
        assert chosen != taken
        with socket.socket() as probe:
            probe.bind((HOST, chosen))


def test_free_default_port_is_kept() -> None:
    port = free_port()
    assert _choose_port(None, port) == port
    assert _choose_port(1234, port) == 1234
