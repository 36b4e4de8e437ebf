"""The vacuum upkeep after erasures and rectifications: the old row versions of what they rewrote
still hold the erased or corrected values until VACUUM removes them from the table files.
``vacuum_after_erasure`` runs after each processor run that rewrote anything; the index cleanup a
large erasure leaves for later is ``finish_vacuum`` (``python -m gdpr.process_privacy_requests
--finish-vacuum``, nightly, and a few partitions at a time by ``--watch`` when idle).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from core import db

# The processor's log lines keep its name, whichever of its modules writes them.
logger = logging.getLogger("gdpr.process_privacy_requests")

# The tables an erasure (or a rectification) rewrites: vacuumed after it, so that the old row versions (which still
# hold the erased values) are removed from the table files instead of waiting for autovacuum.
REWRITING = ("erasure", "rectification")
# The MAINTAIN privilege (sql/014 grants it to the processor) exists from PostgreSQL 17 on.
MAINTAIN_SINCE = 170_000
VACUUMED = ("users_pii", "users_public", "dead_letter_events", "privacy_requests")
# An erasure's vacuum cleans the indexes of the partitions it touched itself while they come to at
# most this much: VACUUM reads every page of an index, however few rows died, which takes about a
# quarter of a second for 256 MiB here. Past it (an erasure of thousands of people, whose events lie
# on every day of a long history) the old row versions still leave the table files at once, and the
# indexes are cleaned by finish_vacuum (sql/026).
INLINE_INDEX_CLEANUP_BYTES = 256 << 20
# --watch, when idle, finishes that vacuum this many partitions at a time between looks at the requests.
FINISH_VACUUM_STEP = 4


@dataclass
class Rewrites:
    """What the processed batches rewrote: completed erasures and rectifications by type, and
    the partitions of events_raw that hold re-keyed events. Only those partitions are vacuumed:
    one person's events are on a few days, and a long history's other days have nothing to do."""

    requests: Counter[str] = field(default_factory=Counter)
    partitions: set[str] = field(default_factory=set)


def vacuum_after_erasure(
    conn: psycopg2.extensions.connection, partitions: Iterable[str] = (), inline_index_bytes: int | None = None
) -> None:
    """VACUUM the tables an erasure rewrote and these partitions of events_raw (outside a
    transaction, as VACUUM must be). When the partitions' indexes together are larger than
    ``inline_index_bytes`` (INLINE_INDEX_CLEANUP_BYTES by default), the partitions are vacuumed
    without index cleanup, which reads their heap pages that changed and not their whole indexes,
    and are queued in erasure_index_cleanup for ``finish_vacuum``: the old row versions leave the
    table files now either way."""
    if conn.server_version < MAINTAIN_SINCE:
        logger.warning(
            "PostgreSQL %d cannot let this role VACUUM (MAINTAIN came with 17): old row versions wait for autovacuum",
            conn.server_version // 10_000,
        )
        return
    limit = INLINE_INDEX_CLEANUP_BYTES if inline_index_bytes is None else inline_index_bytes
    parts = sorted(partitions)
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            deferred = bool(parts) and _indexes_size(cur, parts) > limit
            tables = [*VACUUMED, *([] if deferred else parts)]
            cur.execute(sql.SQL("VACUUM {}").format(_names(tables)))
            if deferred:
                # Queued first: a processor stopped between the two leaves the queue longer, never shorter.
                cur.execute(
                    "INSERT INTO erasure_index_cleanup (partition_name) SELECT unnest(%s::text[])"
                    " ON CONFLICT (partition_name) DO UPDATE SET queued_at = excluded.queued_at",
                    (parts,),
                )
                cur.execute(sql.SQL("VACUUM (INDEX_CLEANUP OFF) {}").format(_names(parts)))
    finally:
        conn.autocommit = autocommit
    logger.info(
        "vacuumed %s and %d partitions of events_raw%s: no old row version keeps an erased or corrected value",
        ", ".join(VACUUMED),
        len(parts),
        " (their index cleanup is queued for --finish-vacuum)" if deferred else "",
    )


def _names(tables: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(*t.split(".")) for t in tables)


def _indexes_size(cur: db.Cursor, tables: list[str]) -> int:
    cur.execute("SELECT coalesce(sum(pg_indexes_size(to_regclass(t))), 0) FROM unnest(%s::text[]) AS t", (tables,))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def finish_vacuum(conn: psycopg2.extensions.connection, stop: threading.Event | None = None, limit: int | None = None) -> int:
    """VACUUM, index cleanup included, the partitions of events_raw an erasure queued in
    erasure_index_cleanup, one at a time, and take each off the queue; return how many left it.
    With ``stop``, return early once it is set, and with ``limit`` after that many (the rest stay
    queued). A partition that retention dropped meanwhile just leaves the queue."""
    done = 0
    handled = 0
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT partition_name, queued_at, to_regclass(partition_name) IS NOT NULL FROM erasure_index_cleanup"
                " ORDER BY queued_at, partition_name LIMIT %s",
                (limit,),
            )
            for name, queued_at, exists in cur.fetchall():
                if stop is not None and stop.is_set():
                    break
                handled += 1
                if exists:
                    try:
                        cur.execute(sql.SQL("VACUUM {}").format(_names([name])))
                        done += 1
                    except psycopg2.errors.UndefinedTable:
                        pass  # dropped by retention since it was read: nothing left to clean
                # An erasure that queued it again meanwhile keeps it queued.
                cur.execute("DELETE FROM erasure_index_cleanup WHERE partition_name = %s AND queued_at = %s", (name, queued_at))
    finally:
        conn.autocommit = autocommit
    if done:
        logger.info("finished the vacuum of %d partitions of events_raw, index cleanup included", done)
    return handled


def finish_vacuum_step(conn: psycopg2.extensions.connection, stop: threading.Event) -> bool:
    """A few partitions' deferred index cleanup (finish_vacuum); whether more may be queued."""
    if stop.is_set():
        return False
    try:
        return finish_vacuum(conn, stop, FINISH_VACUUM_STEP) == FINISH_VACUUM_STEP
    except psycopg2.Error as e:
        if not db.is_transient(e):
            raise
        logger.warning("vacuum not finished this round, trying again: %s", db.describe_error(e))
        return False
