"""Retry what is transient, for a bounded time (psycopg_pool's ``reconnect_timeout``).

Errors are classified by SQLSTATE (core.db.is_transient): a lost connection, a serialization
failure or a deadlock is retried with backoff (core.retry); anything else is raised at once. When
the failures last longer than the configured total, the caller stops with a clear error and exit
status: nothing of the work in hand was stored, and a restart resumes from the stored offsets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from core import db, retry
from core.errors import PlatformError, ServiceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Several consumers lose PostgreSQL at the same moment: full jitter spreads their reconnects.
BACKOFF = retry.Backoff(first_s=0.5, max_s=10.0, jitter="full")


class GaveUp(PlatformError):
    """PostgreSQL kept failing for longer than the retry budget."""


class Interrupted(PlatformError):
    """Stopped while waiting for PostgreSQL; nothing of the work in hand was stored."""


def retryable(error: BaseException) -> bool:
    """Transient database errors, and a failed reconnect whose cause was transient."""
    if isinstance(error, ServiceUnavailable):
        return error.__cause__ is not None and db.is_transient(error.__cause__)
    return db.is_transient(error)


def database_policy(total_s: float) -> retry.RetryPolicy:
    """The sink's policy: transient database failures, for at most ``total_s`` (DB_RETRY_TIMEOUT_S)."""
    return retry.RetryPolicy(transient=retryable, backoff=BACKOFF, budget_s=total_s)


def _reason(error: BaseException) -> str:
    return str(error) if isinstance(error, PlatformError) else db.describe_error(error)


def with_retry(
    what: str,
    action: Callable[[], T],
    *,
    policy: retry.RetryPolicy,
    stop: threading.Event,
    reset: Callable[[], None],
    where: str,
) -> T:
    """Run ``action`` (one transaction, rolled back on failure) until it succeeds.

    ``reset`` discards the failed connection's state; ``where`` names the server in messages.
    """

    def attempt() -> T:
        try:
            return action()
        except Exception as e:
            if retryable(e):
                reset()
            raise

    def log(r: retry.Retry) -> None:
        logger.warning("PostgreSQL failed while %s (%s); retrying in %.1f s", what, _reason(r.error), r.delay_s)

    try:
        return retry.call(attempt, policy, stop=stop, on_retry=log)
    except retry.Interrupted as e:
        raise Interrupted(f"stopped while PostgreSQL was unavailable ({what}); nothing of it was stored") from e.error
    except retry.GaveUp as e:
        raise GaveUp(
            f"PostgreSQL at {where} kept failing for {policy.budget_s or 0:.0f} s while {what} ({_reason(e.error)}); "
            "stopping. Nothing of the batch in hand was stored: a restart resumes from the stored offsets. "
            "DB_RETRY_TIMEOUT_S sets how long to wait."
        ) from e.error
