"""The consumers' view of the consent ledger follows commits: a change whose transaction commits
after later ones (a large erasure, a psql session left open) is still read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from core import db
from core.config import Settings
from core.consent import WITHDRAWN, ConsentLedger

pytestmark = pytest.mark.integration


def test_a_change_committed_late_is_read_by_a_running_ledger(settings: Settings) -> None:
    slow_user, quick_user = str(uuid.uuid4()), str(uuid.uuid4())
    ledger = ConsentLedger("required")
    with db.connection(settings.database, role=db.INGEST_ROLE) as reader, db.connection(settings.database) as slow:
        with reader, reader.cursor() as cur:
            ledger.refresh(cur)
        # The slow transaction writes first (the lower id), then stays open.
        slow_cur = slow.cursor()
        slow_cur.execute(
            "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, 'analytics', false, 'sql')",
            (slow_user,),
        )
        with db.connection(settings.database) as quick, quick, quick.cursor() as cur:
            cur.execute(
                "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, 'analytics', true, 'sql')",
                (quick_user,),
            )
        with reader, reader.cursor() as cur:
            assert ledger.refresh(cur) == 1
        assert ledger.decide(quick_user, datetime.now(UTC)) is None

        slow.commit()
        with reader, reader.cursor() as cur:
            assert ledger.refresh(cur) == 1
            assert ledger.refresh(cur) == 0  # read once, however often it is read again
    assert ledger.decide(slow_user, datetime.now(UTC)) == WITHDRAWN
    assert len(ledger) == 2


def test_the_read_before_each_batch_never_starts_parallel_workers(settings: Settings) -> None:
    """Without statistics on txid the planner expects a third of the ledger and starts parallel
    workers for the few rows the incremental read finds: milliseconds of every batch."""
    ledger = ConsentLedger("required")

    def parallel_workers(cur: db.Cursor) -> str:
        cur.execute("SHOW max_parallel_workers_per_gather")
        row = cur.fetchone()
        assert row is not None
        return str(row[0])

    with db.connection(settings.database, role=db.INGEST_ROLE) as reader:
        with reader, reader.cursor() as cur:
            ledger.refresh(cur)
        with reader, reader.cursor() as cur:
            ledger.refresh(cur)
            assert parallel_workers(cur) == "0"
        with reader, reader.cursor() as cur:
            assert parallel_workers(cur) != "0"  # for the read's transaction alone
