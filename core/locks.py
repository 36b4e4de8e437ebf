"""Coordination locks that only the components that need them can take (sql/030).

Each lock is an empty table that ``platform_lock(name, exclusive, wait_ms)`` locks for the transaction, as the table's
owner, for a login whose group role sql/030 granted that lock in that mode: shared (SHARE mode)
or exclusive (EXCLUSIVE mode). Every wait is bounded: past ``wait_ms`` the statement fails with
SQLSTATE 55P03 (lock_not_available, which callers classify as transient and retry), one warning
line names the lock, and ``platform_lock_timeouts`` counts it. Unlike an advisory lock, whose
key any login may take, only the granted components can hold (or block) one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.errors
from prometheus_client import Counter

from core import db
from core.config import DatabaseSettings

logger = logging.getLogger(__name__)

ERASURE = "erasure"
PERSON_DAYS_BUILD = "person_days_build"
USER_SEED = "user_seed"
EVENT_DAYS = "event_days"
# A wait for a lock held by another component's short transaction: seconds at most. Services
# keep it under their statement timeout (wait_ms_for), so the bounded wait is what ends it.
DEFAULT_WAIT_MS = 10_000
# A reader of events_raw's days waits for a move under way: the nightly run moves every day left in
# the default partition in one transaction (sql/029), seconds for the demo's 42 days. Half the
# default statement timeout, so the wait ends with its own error (lock_not_available).
EVENT_DAYS_WAIT_MS = 30_000

LOCK_TIMEOUTS = Counter(
    "platform_lock_timeouts",
    "Waits for a coordination lock (sql/030) that ended at their bound, by lock name.",
    ["lock"],
)


def wait_ms_for(settings: DatabaseSettings, wanted_ms: int = DEFAULT_WAIT_MS) -> int:
    """``wanted_ms``, but under half the statement timeout (0: none), so that a lock wait ends
    with its own error (lock_not_available, retried) rather than a statement timeout."""
    timeout = settings.statement_timeout_ms
    return min(wanted_ms, max(timeout // 2, 1)) if timeout > 0 else wanted_ms


def take(cur: db.Cursor, name: str, *, exclusive: bool = False, wait_ms: int = DEFAULT_WAIT_MS) -> None:
    """Hold lock ``name`` until the transaction ends, waiting ``wait_ms`` at most (55P03 past it)."""
    try:
        cur.execute("SELECT platform_lock(%s, %s, %s)", (name, exclusive, wait_ms))
    except psycopg2.errors.LockNotAvailable:
        LOCK_TIMEOUTS.labels(name).inc()
        logger.warning(
            "waited %d ms for the %s lock %r without getting it: another run of a component holds it",
            wait_ms,
            "exclusive" if exclusive else "shared",
            name,
        )
        raise


@contextmanager
def held(
    settings: DatabaseSettings, name: str, *, role: str | None, application_name: str, wait_ms: int = DEFAULT_WAIT_MS
) -> Iterator[None]:
    """Hold lock ``name`` exclusively for the block, on a connection of its own (as ``role``'s
    login) whose transaction lasts as long: for work of many transactions (a build, a seed). A
    table lock gives that transaction no xid, so it holds back no vacuum; if the process dies,
    the server ends the connection and the lock with it."""
    with db.connection(settings, application_name=f"{application_name}-lock", role=role) as conn:
        with conn.cursor() as cur:
            take(cur, name, exclusive=True, wait_ms=wait_ms)
        try:
            yield
        finally:
            if not conn.closed:
                conn.rollback()


def hold_event_days(cur: db.Cursor, *, wait_ms: int = EVENT_DAYS_WAIT_MS) -> None:
    """Keep events_raw's days where they are until the transaction ends (sql/047): a move of a
    day's rows out of the default partition either committed before, or waits for this
    transaction. Call it first in the transaction, before any statement reads events_raw. In a
    REPEATABLE READ transaction whose snapshot was taken before a move committed it fails with
    40001 (SerializationFailure): start the transaction again."""
    try:
        cur.execute("SELECT events_raw_hold_days(%s)", (wait_ms,))
    except psycopg2.errors.LockNotAvailable:
        LOCK_TIMEOUTS.labels(EVENT_DAYS).inc()
        logger.warning("waited %d ms for the shared lock %r without getting it: events are being moved", wait_ms, EVENT_DAYS)
        raise
