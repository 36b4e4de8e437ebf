"""Retry what is transient, for a bounded time (psycopg_pool's ``reconnect_timeout``).

Errors are classified by SQLSTATE (core.db.is_transient): a lost connection, a serialization
failure or a deadlock is retried with backoff; anything else is raised at once. When the
failures last longer than the configured total, the caller stops with a clear error and exit
status: nothing of the work in hand was stored, and a restart resumes from the stored offsets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from core import db
from core.errors import PlatformError, ServiceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


class GaveUp(PlatformError):
    """PostgreSQL kept failing for longer than the retry budget."""


class Interrupted(PlatformError):
    """Stopped while waiting for PostgreSQL; nothing of the work in hand was stored."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff from ``initial_s`` doubling to ``max_s``, for at most ``total_s`` in all."""

    total_s: float
    initial_s: float = 0.5
    max_s: float = 10.0


def retryable(error: BaseException) -> bool:
    """Transient database errors, and a failed reconnect whose cause was transient."""
    if isinstance(error, ServiceUnavailable):
        return error.__cause__ is not None and db.is_transient(error.__cause__)
    return db.is_transient(error)


def with_retry(
    what: str,
    action: Callable[[], T],
    *,
    policy: RetryPolicy,
    stop: threading.Event,
    reset: Callable[[], None],
    where: str,
) -> T:
    """Run ``action`` (one transaction, rolled back on failure) until it succeeds.

    ``reset`` discards the failed connection's state; ``where`` names the server in messages.
    """
    deadline = time.monotonic() + policy.total_s
    delay = policy.initial_s
    while True:
        try:
            return action()
        except Exception as e:
            if not retryable(e):
                raise
            reason = str(e) if isinstance(e, PlatformError) else db.describe_error(e)
            reset()
            if stop.is_set():
                raise Interrupted(f"stopped while PostgreSQL was unavailable ({what}); nothing of it was stored") from e
            if time.monotonic() + delay > deadline:
                raise GaveUp(
                    f"PostgreSQL at {where} kept failing for {policy.total_s:.0f} s while {what} ({reason}); stopping. "
                    "Nothing of the batch in hand was stored: a restart resumes from the stored offsets. "
                    "DB_RETRY_TIMEOUT_S sets how long to wait."
                ) from e
            logger.warning("PostgreSQL failed while %s (%s); retrying in %.1f s", what, reason, delay)
            stop.wait(delay)
            delay = min(delay * 2, policy.max_s)
