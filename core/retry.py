"""One retry policy for the platform: exponential backoff between a first and a maximum delay, for
a bounded time, retrying only what the caller classifies as transient.

Each place keeps its own classification (SQLSTATE classes through ``core.db.is_transient``, a lost
collector, a server's Retry-After) and its own budget (``DB_RETRY_TIMEOUT_S``); the waiting, the
counting and the giving up are written once, here. Hand-written rather than tenacity: it is a page
of code, and tenacity is not among the platform's dependencies.

The delays: ``first_s``, doubling, at most ``max_s`` (0.5 s, 1 s, 2 s ... 10 s by default: quick
to notice a restart, and one log line per attempt stays readable through a long outage). With
jitter, processes that lost the same server at the same moment do not all come back at once:
"full" waits a random time up to that delay, "decorrelated" a random time between ``first_s`` and
three times the previous wait (AWS Architecture Blog, "Exponential Backoff And Jitter").
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from core.errors import PlatformError

__all__ = ["Backoff", "GaveUp", "Interrupted", "Retry", "RetryAfter", "RetryError", "RetryPolicy", "call"]

T = TypeVar("T")
Jitter = Literal["none", "full", "decorrelated"]

# 2 ** 64 half-seconds is far past any maximum delay: the exponent stops there, never overflows.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """The wait before each retry: ``first_s`` doubling to at most ``max_s``, with ``jitter``."""

    first_s: float = 0.5
    max_s: float = 10.0
    jitter: Jitter = "none"

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s:
            raise ValueError(f"a backoff needs 0 < first_s <= max_s, not {self.first_s} and {self.max_s}")

    def delay(self, retry: int, previous_s: float | None = None, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first); ``previous_s`` is the
        last wait (decorrelated jitter grows from it), ``rand`` a uniform number in [0, 1)."""
        ceiling = min(self.max_s, self.first_s * 2.0 ** min(max(retry - 1, 0), _MAX_EXPONENT))
        if self.jitter == "full":
            return ceiling * rand()
        if self.jitter == "decorrelated":
            grown = 3 * (previous_s if previous_s is not None else self.first_s)
            return min(self.max_s, self.first_s + (grown - self.first_s) * rand())
        return ceiling


def _never(_error: BaseException) -> bool:
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """What to retry (``transient``), how long to wait between tries (``backoff``), and when to
    give up: after ``budget_s`` seconds in all (a wait that would end past it is not begun) or
    after ``max_retries`` retries; None is no limit."""

    transient: Callable[[BaseException], bool] = _never
    backoff: Backoff = Backoff()
    budget_s: float | None = None
    max_retries: int | None = None


@dataclass(frozen=True)
class Retry:
    """One retry about to wait, as the ``on_retry`` callback sees it (to log it)."""

    number: int  # 1 for the first retry
    error: BaseException
    delay_s: float
    elapsed_s: float


class RetryAfter(Exception):
    """Raised by an action to be tried again after ``wait_s`` (a server's Retry-After) instead of
    the backoff; it counts against the budget, but does not lengthen the next backoff."""

    def __init__(self, wait_s: float, reason: str = "") -> None:
        super().__init__(reason or f"asked to wait {wait_s:g} s")
        self.wait_s = wait_s


class RetryError(PlatformError):
    """Retrying ended without success; ``error`` (also the ``__cause__``) is the last failure."""

    def __init__(self, message: str, *, error: BaseException, retries: int, elapsed_s: float) -> None:
        super().__init__(message)
        self.error = error
        self.retries = retries
        self.elapsed_s = elapsed_s


class GaveUp(RetryError):
    """The failures outlasted the budget (or the number of retries)."""


class Interrupted(RetryError):
    """The stop flag was set: no further try was made."""


def call(
    action: Callable[[], T],
    policy: RetryPolicy,
    *,
    stop: threading.Event | None = None,
    on_retry: Callable[[Retry], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] | None = None,
    rand: Callable[[], float] = random.random,
) -> T:
    """``action()`` until it returns, retrying the errors ``policy.transient`` accepts (and
    :class:`RetryAfter`); any other error is raised as it is.

    After a transient failure: Interrupted if ``stop`` is set, GaveUp if the next wait would end
    past the budget or the retries are used up, else ``on_retry`` is called and the wait begins.
    ``stop`` interrupts the wait (then Interrupted, without another try). ``clock``, ``sleep``
    (default: ``stop.wait``, or ``time.sleep`` without a stop flag) and ``rand`` are for tests.
    """
    wait = sleep if sleep is not None else (stop.wait if stop is not None else time.sleep)
    started = clock()
    retries = 0
    backoffs = 0
    previous_s: float | None = None
    while True:
        try:
            return action()
        except Exception as e:
            if isinstance(e, RetryAfter):
                delay = max(0.0, e.wait_s)
            elif policy.transient(e):
                backoffs += 1
                delay = policy.backoff.delay(backoffs, previous_s, rand)
                previous_s = delay
            else:
                raise
            elapsed = clock() - started
            if stop is not None and stop.is_set():
                raise Interrupted(f"stopped while retrying: {e}", error=e, retries=retries, elapsed_s=elapsed) from e
            out_of_retries = policy.max_retries is not None and retries >= policy.max_retries
            if out_of_retries or (policy.budget_s is not None and elapsed + delay > policy.budget_s):
                raise GaveUp(
                    f"still failing after {retries} retries in {elapsed:.1f} s: {e}", error=e, retries=retries, elapsed_s=elapsed
                ) from e
            retries += 1
            if on_retry is not None:
                on_retry(Retry(retries, e, delay, elapsed))
            wait(delay)
            if stop is not None and stop.is_set():
                raise Interrupted(f"stopped while retrying: {e}", error=e, retries=retries, elapsed_s=clock() - started) from e
