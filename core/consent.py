"""Consent: the ledger's history in memory, and the decision the consumers take on every event.

``consent_ledger`` (sql/010) is append-only: each row grants or withdraws one purpose for one
user from ``effective_at`` on. The state at an instant is the last row at or before it (ties:
the later row). Both consumers hold the analytics history in memory, read in full at start and
then incrementally before each batch they decide, so a check costs a dictionary lookup, never a
query per event.

Both consumers decide alike, so the streaming metrics and the batch recompute over ``events_raw``
agree exactly: a change takes effect for events timestamped after it, and each consumer reads the
ledger after it has polled the events it decides. Reads follow commits, not insert times: rows
are read again from the oldest transaction still running at the previous read (``txid``), so a
change whose transaction commits late is never missed. The one way they can differ is a change
recorded while an event of the same user that is timestamped later is already being decided:
an event stamped in the future by its sender's clock, or a change committed in the instant of a
batch. ``batch.compare_batch_vs_stream`` reports such drift.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from core.db import Cursor

logger = logging.getLogger(__name__)

ANALYTICS = "analytics"
# What a purpose may be called: the CHECK on consent_ledger.purpose (sql/010).
PURPOSE_PATTERN = re.compile(r"\A[a-z][a-z0-9_]{0,39}\Z")
# Reasons an event is dropped (counted in consent_dropped_daily, never stored).
NO_CONSENT = "no_consent"
WITHDRAWN = "consent_withdrawn"
# The source of the withdrawals an erasure records.
ERASURE_SOURCE = "erasure"
# The first read holds every row at once: a server-side cursor hands it over in pieces.
_FETCH = 10_000
# The last column says whether the change is an erasure's withdrawal, which is final.
_COLUMNS = "id, user_id::text, granted, effective_at, txid::text, source = 'erasure'"

# The horizon of an empty fast path: no event is at or after it.
_NEVER = datetime.max.replace(tzinfo=UTC)

# One consent change: (effective_at, ledger id, granted), sorted per user.
Change = tuple[datetime, int, bool]


class ConsentLedger:
    """The consent history of one purpose, and the decision for an event of a user at a time.

    ``mode`` is CONSENT_MODE: with ``required`` a user without a record before the event does
    not count; with ``assumed`` such a user counts (the design document's original flow).
    Recorded withdrawals and erasures apply in both modes.
    """

    def __init__(self, mode: str, purpose: str = ANALYTICS) -> None:
        self.required = mode == "required"
        self.purpose = purpose
        self._history: dict[str, datetime | list[Change]] = {}
        # The oldest transaction still running at the last read: rows of it and of every later
        # transaction are read again next time (a transaction may commit long after it wrote).
        self._xmin: int | None = None
        self._recent: dict[int, int] = {}  # ledger id -> txid, for rows read at or after _xmin
        # The fast path: users whose whole history is one grant at or before ``_horizon``. For an
        # event at or after the horizon a set probe decides (about 300 ns less than the lookup in
        # ``_history`` and its value, measured with a million users: 15 % of a consumer's time).
        self._settled: set[str] = set()
        self._horizon = _NEVER
        # Erased users and when: an erasure is final (after it only a new identity can consent,
        # sql/035), so no change recorded after it counts, a grant from before sql/035 included.
        self._erased: dict[str, datetime] = {}
        self.changes = 0

    def __len__(self) -> int:
        """How many users have a consent record for the purpose."""
        return len(self._history)

    def refresh(self, cur: Cursor) -> int:
        """Read what was committed since the last read (everything the first time); return how
        many changes were new. ``cur`` must be in a transaction (the first read streams through
        a server-side cursor)."""
        # The incremental read runs before every batch and finds a handful of rows by the txid
        # index. Without statistics on txid (a ledger just loaded) the planner expects a third of
        # the table and launches parallel workers: 5 ms of every batch spent starting processes.
        cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        # First the horizon, then the rows: whatever commits after this statement was still
        # running (or had not started), so its transaction id is at least this.
        cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        row = cur.fetchone()
        assert row is not None  # noqa: S101 - SELECT without FROM returns one row
        xmin = int(row[0])
        if self._xmin is None:
            with cur.connection.cursor(name="consent_ledger_full_read") as rows:
                rows.itersize = _FETCH
                rows.execute(f"SELECT {_COLUMNS} FROM consent_ledger WHERE purpose = %s ORDER BY id", (self.purpose,))  # noqa: S608 - constant columns
                new = self._take(rows, xmin)
            self.settle(datetime.now(UTC))
        else:
            cur.execute(
                f"SELECT {_COLUMNS} FROM consent_ledger WHERE purpose = %s AND txid >= %s::text::xid8 ORDER BY id",  # noqa: S608 - constant columns
                (self.purpose, str(self._xmin)),
            )
            new = self._take(cur, xmin)
        self._recent = {i: txid for i, txid in self._recent.items() if txid >= xmin}
        self._xmin = xmin
        self.changes += new
        if new:
            logger.debug("consent ledger: %d new %s changes, %d users", new, self.purpose, len(self._history))
        return new

    def _take(self, rows: Iterable[tuple[int, str, bool, datetime, str, bool]], xmin: int) -> int:
        new = 0
        for ledger_id, user_id, granted, effective_at, txid_text, erasure in rows:
            if ledger_id in self._recent:
                continue
            txid = int(txid_text)
            if txid >= xmin:
                self._recent[ledger_id] = txid
            if erasure and not granted:
                self._erased[user_id] = min(effective_at, self._erased.get(user_id, effective_at))
            self.add(user_id, (effective_at, ledger_id, granted))
            new += 1
        return new

    def settle(self, now: datetime) -> None:
        """Put every user whose only change is a grant made by ``now`` on the fast path, with the
        latest of those grants as its horizon (done once, after the first read)."""
        grants = {user: known for user, known in self._history.items() if isinstance(known, datetime) and known <= now}
        self._horizon = max(grants.values(), default=_NEVER)
        self._settled = set(grants)

    def add(self, user_id: str, change: Change) -> None:
        """Know one change read from the ledger (``refresh`` never hands the same one twice).

        A user's first change, when a grant, is kept as its time alone; should a later read bring
        a change of the same user at the very same instant with a lower id (a transaction that
        committed late, with an ``effective_at`` written by hand), the later read wins the tie
        where ``consent_at`` would pick the higher id."""
        known = self._history.get(user_id)
        if known is None:
            # Nearly every user has one change, a grant: kept as its time alone, a third of the
            # memory of a list of tuples (a million users cost about 180 MB instead of 340 MB).
            self._history[user_id] = change[0] if change[2] else [change]
            if change[2] and change[0] <= self._horizon:
                self._settled.add(user_id)
            return
        self._settled.discard(user_id)
        if isinstance(known, datetime):
            # The grant was the first change known of this user: it sorts before later ones
            # recorded at the same instant.
            known = self._history[user_id] = [(known, -1, True)]
        bisect.insort(known, change)

    def fast_path(self) -> tuple[set[str], datetime]:
        """The users on the fast path and its horizon: an event of one of them at or after the
        horizon counts. For a caller's own loop over many events (a call per event costs more
        than the check); ``decide`` gives the same answer."""
        return self._settled, self._horizon

    def decide(self, user_id: str, at: datetime) -> str | None:
        """None when an event of ``user_id`` at ``at`` counts; otherwise why it does not."""
        if at >= self._horizon and user_id in self._settled:
            return None
        known = self._history.get(user_id)
        if isinstance(known, datetime):  # one grant
            if known <= at:
                return None
        elif known is not None:
            erased_at = self._erased.get(user_id)
            if erased_at is not None and at >= erased_at:
                return WITHDRAWN  # final: whatever was recorded after the erasure
            # The last change at or before ``at``; (at, max id) sorts after every change at ``at``.
            index = bisect.bisect_right(known, (at, 1 << 62, True)) - 1
            if index >= 0:
                return None if known[index][2] else WITHDRAWN
        # No record at or before ``at``.
        return NO_CONSENT if self.required else None


def record(cur: Cursor, user_id: str, granted: bool, source: str, purpose: str = ANALYTICS) -> datetime:
    """Append one consent change, effective now (the database's clock); return its time.

    ``user_id`` is canonical UUID text (core.events validates it); ``source`` names who
    recorded it (``collector:<key name>``, ``erasure``, ``generator``), never a person.
    """
    cur.execute(
        "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, %s, %s, %s) RETURNING effective_at",
        (user_id, purpose, granted, source),
    )
    row = cur.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    effective_at: datetime = row[0]
    return effective_at
