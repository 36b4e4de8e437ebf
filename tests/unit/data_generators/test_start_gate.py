"""The generator processes start sending together: the gate opens once every one is set up, or
once one has ended (it failed: the others go on), and a stopped worker does not send."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass

from data_generators.producer import StartGate


@dataclass
class Worker:
    alive: bool = True

    def is_alive(self) -> bool:
        return self.alive


def gate() -> StartGate:
    context = multiprocessing.get_context("spawn")
    return StartGate(context.Queue(), context.Event())


def test_the_gate_opens_when_every_worker_is_ready_and_not_before() -> None:
    g, workers, stop = gate(), [Worker(), Worker()], threading.Event()
    opener = threading.Thread(target=g.open, args=(workers, stop))
    opener.start()
    g.ready.put(0)
    opener.join(timeout=1.0)
    assert opener.is_alive() and not g.go.is_set()  # one worker is still setting up
    assert g.wait(1, threading.Event())  # the second says it is ready and is let go
    opener.join()
    assert g.go.is_set()


def test_a_worker_that_ended_opens_the_gate_for_the_others() -> None:
    g, stop = gate(), threading.Event()
    g.ready.put(0)
    g.open([Worker(), Worker(alive=False)], stop)
    assert g.go.is_set()


def test_a_worker_stopped_while_it_waits_sends_nothing() -> None:
    g, stop = gate(), threading.Event()
    stop.set()
    assert not g.wait(0, stop)
