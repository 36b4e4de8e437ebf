"""Consent: the ledger's history in memory, and the decision the consumers take on every event.

``consent_ledger`` (sql/010) is append-only: each row grants or withdraws one purpose for one
user from ``effective_at`` on. The state at an instant is the last row at or before it (ties:
the later row). Both consumers hold the analytics history in memory, read in full at start and
then incrementally before each batch they decide, so a check costs a dictionary lookup, never a
query per event.

Both consumers decide alike, so the streaming metrics and the batch recompute over ``events_raw``
agree exactly: a change takes effect for events timestamped after it, and each consumer reads the
ledger after it has polled the events it decides. The one way they can differ is a change
recorded while an event of the same user that is timestamped later is already being decided:
an event stamped in the future by its sender's clock, or a change committed in the instant of a
batch. ``batch.compare_batch_vs_stream`` reports such drift.
"""

from __future__ import annotations

import bisect
import logging
from datetime import datetime, timedelta

from core.db import Cursor

logger = logging.getLogger(__name__)

ANALYTICS = "analytics"
# Reasons an event is dropped (counted in consent_dropped_daily, never stored).
NO_CONSENT = "no_consent"
WITHDRAWN = "consent_withdrawn"
REQUIRED = "required"
# A row's recorded_at is when it was inserted, not when its transaction committed: each read
# goes back this far so that a row committed late (a bulk load) is still seen. Rows already
# known are skipped by id.
REFRESH_OVERLAP = timedelta(seconds=15)
_FETCH = 10_000

# One consent change: (effective_at, ledger id, granted), sorted per user.
Change = tuple[datetime, int, bool]


class ConsentLedger:
    """The consent history of one purpose, and the decision for an event of a user at a time.

    ``mode`` is CONSENT_MODE: with ``required`` a user without a record before the event does
    not count; with ``assumed`` such a user counts (the design document's original flow).
    Recorded withdrawals and erasures apply in both modes.
    """

    def __init__(self, mode: str, purpose: str = ANALYTICS) -> None:
        self.required = mode == REQUIRED
        self.purpose = purpose
        self._history: dict[str, datetime | list[Change]] = {}
        self._read_until: datetime | None = None  # the database's clock at the last read
        self._recent: dict[int, datetime] = {}  # ids read within the overlap (never added twice)
        self.changes = 0

    def __len__(self) -> int:
        """How many users have a consent record for the purpose."""
        return len(self._history)

    def refresh(self, cur: Cursor) -> int:
        """Read what was recorded since the last read (everything the first time); return how
        many changes were new."""
        cur.execute("SELECT clock_timestamp()")
        row = cur.fetchone()
        assert row is not None  # noqa: S101 - SELECT without FROM returns one row
        now: datetime = row[0]
        if self._read_until is None:
            cur.execute(
                "SELECT id, user_id::text, granted, effective_at, recorded_at FROM consent_ledger WHERE purpose = %s ORDER BY id",
                (self.purpose,),
            )
        else:
            cur.execute(
                "SELECT id, user_id::text, granted, effective_at, recorded_at FROM consent_ledger"
                " WHERE purpose = %s AND recorded_at >= %s ORDER BY id",
                (self.purpose, self._read_until - REFRESH_OVERLAP),
            )
        new = 0
        while rows := cur.fetchmany(_FETCH):
            for ledger_id, user_id, granted, effective_at, recorded_at in rows:
                if ledger_id in self._recent:
                    continue
                if recorded_at >= now - REFRESH_OVERLAP:
                    self._recent[ledger_id] = recorded_at
                self.add(user_id, (effective_at, ledger_id, granted))
                new += 1
        horizon = now - REFRESH_OVERLAP
        self._recent = {i: at for i, at in self._recent.items() if at >= horizon}
        self._read_until = now
        self.changes += new
        if new:
            logger.debug("consent ledger: %d new %s changes, %d users", new, self.purpose, len(self._history))
        return new

    def add(self, user_id: str, change: Change) -> None:
        """Know one change read from the ledger. Changes come in ledger order (by id), and
        ``refresh`` never hands the same one twice."""
        known = self._history.get(user_id)
        if known is None:
            # Nearly every user has one change, a grant: kept as its time alone, a third of the
            # memory of a list of tuples (a million users cost about 180 MB instead of 340 MB).
            self._history[user_id] = change[0] if change[2] else [change]
            return
        if isinstance(known, datetime):
            # The grant was the first change known of this user: it sorts before later ones
            # recorded at the same instant.
            known = self._history[user_id] = [(known, -1, True)]
        bisect.insort(known, change)

    def decide(self, user_id: str, at: datetime) -> str | None:
        """None when an event of ``user_id`` at ``at`` counts; otherwise why it does not."""
        known = self._history.get(user_id)
        if known is None:
            return NO_CONSENT if self.required else None
        if isinstance(known, datetime):  # one grant
            if known <= at:
                return None
            return NO_CONSENT if self.required else None
        # The last change at or before ``at``; (at, max id) sorts after every change at ``at``.
        index = bisect.bisect_right(known, (at, 1 << 62, True)) - 1
        if index < 0:
            return NO_CONSENT if self.required else None
        return None if known[index][2] else WITHDRAWN


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
