"""A stale instance cannot write twice: forced against the real PostgreSQL, not left to chance.

Two sinks of one group hold the same partition, as after a rebalance the revoked instance still
holds a polled batch. The new owner commits past that batch while the stale one is writing it:
the stale one waits on the locked offsets, then drops what is already done and stores the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from consumers.store_raw_events import RawEventsWriter
from core import locks
from core.config import Settings
from core.sink.batch import Consumed, Polled
from core.sink.consumer import Sink
from tests.helpers import known_events, query, stored_total, wait_until

pytestmark = pytest.mark.integration

PARTITION = 0


@pytest.fixture
def raw_sink(settings: Settings) -> Iterator[Callable[[str], Sink[object]]]:
    """Raw-events sinks of the test's settings, their connections closed afterwards."""
    made: list[Sink[object]] = []

    def make(group: str) -> Sink[object]:
        writer = RawEventsWriter(
            settings.retention.raw_event_days, locks.wait_ms_for(settings.database), settings.partitions_per_batch
        )
        made.append(Sink(settings, group, writer, threading.Event()))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for sink in made:
        sink._connection().close()


def polled(consumed: list[Consumed], start: int, stop: int) -> Polled[object]:
    """Offsets ``start`` to ``stop - 1`` of the partition, as one poll returns them."""
    return Polled(consumed[start:stop], [], None)


def stored_rows(settings: Settings) -> tuple[int, int]:
    [(total, distinct)] = query(settings, "SELECT count(*), count(DISTINCT event_id) FROM events_raw")
    return total, distinct


def test_a_stale_instance_waits_for_the_new_owner_then_stores_only_what_it_has_not(
    settings: Settings, group: str, raw_sink: Callable[[str], Sink[object]]
) -> None:
    events = known_events(300, seed=71, days=[datetime.now(UTC).date()])
    consumed = [Consumed(e, PARTITION, offset) for offset, e in enumerate(events)]
    raw_group = f"raw-{group}"
    owner, stale = raw_sink(raw_group), raw_sink(raw_group)

    owner._store(polled(consumed, 0, 50))
    # The new owner is inside its next transaction: offsets 50..249 written and the stored
    # offset advanced to 250, not committed yet, the offsets' row locked.
    owner_conn = owner._connection()
    try:
        with owner_conn.cursor() as cur:
            owner._commit(polled(consumed, 50, 250), cur, isolate=False)
        with ThreadPoolExecutor(1) as pool:
            # The stale instance still holds its batch of offsets 50..199 (read when 50 was
            # the stored offset) and writes it now.
            writing = pool.submit(stale._store, polled(consumed, 50, 200))
            wait_until(
                lambda: (
                    query(
                        settings,
                        "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                        (owner_conn.get_backend_pid(),),
                    )
                    == [(1,)]
                ),
                timeout=30,
                what="the stale instance to wait on the locked offsets",
            )
            assert stored_rows(settings) == (50, 50)  # nothing of this round is visible yet
            owner_conn.commit()
            writing.result(timeout=30)
    finally:
        owner_conn.rollback()
        owner_conn.close()
    assert stale.stats.events == 0 and stale.stats.skipped_already_done == 150
    assert stored_rows(settings) == (250, 250)
    assert stored_total(settings, raw_group) == 250

    # Its next batch overlaps what the owner stored: only offsets 250..299 are new.
    stale._store(polled(consumed, 200, 300))
    assert stale.stats.events == 50 and stale.stats.skipped_already_done == 200
    assert stored_rows(settings) == (300, 300)
    assert stored_total(settings, raw_group) == 300


def test_a_batch_that_would_skip_messages_is_not_written_and_the_offset_stays(
    settings: Settings, group: str, raw_sink: Callable[[str], Sink[object]]
) -> None:
    """A batch starting past the stored offset (its start was never stored) writes nothing: the
    stored offset stays, so the messages in between are consumed again, never skipped."""
    events = known_events(100, seed=73, days=[datetime.now(UTC).date()])
    consumed = [Consumed(e, PARTITION, offset) for offset, e in enumerate(events)]
    raw_group = f"raw-{group}"
    sink = raw_sink(raw_group)
    sink._store(polled(consumed, 0, 40))
    sink._store(polled(consumed, 60, 100))  # 40..59 were never written by anyone
    assert stored_rows(settings) == (40, 40)
    assert stored_total(settings, raw_group) == 40
    sink._store(polled(consumed, 40, 100))  # after the rewind the consumer polls them again
    assert stored_rows(settings) == (100, 100)
    assert stored_total(settings, raw_group) == 100
