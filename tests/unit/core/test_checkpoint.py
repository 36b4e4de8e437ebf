"""core.sink.checkpoint: the fence that makes "a stale instance cannot write twice" true.

Given the offsets stored by whoever committed last, a batch keeps only what is not stored yet,
never moves an offset back, and a partition whose batch starts past its stored offset is neither
written nor advanced (the consumer rewinds it instead of skipping messages).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from core.sink.batch import Consumed, DeadLetter, Dropped, Polled
from core.sink.checkpoint import Fence
from tests.helpers import known_events

DAY = date(2026, 3, 2)


def batch(partition: int, offsets: range, *, dead: Collection[int] = (), dropped: Collection[int] = ()) -> Polled[str]:
    """A polled batch of ``partition`` with one message per offset: dead letters and events
    dropped for lack of consent at the offsets named, valid events elsewhere."""
    events = known_events(len(offsets), seed=partition, days=[DAY])
    valid = [Consumed(e, partition, o) for e, o in zip(events, offsets, strict=True) if o not in dead and o not in dropped]
    return Polled(
        valid,
        [DeadLetter(partition, o, "not_json", "{") for o in offsets if o in dead],
        "encoded",
        [Dropped(partition, o, DAY, "no_consent") for o in offsets if o in dropped],
        (1_000, 2_000),
    )


def merged(*polled: Polled[str]) -> Polled[str]:
    return Polled(
        [c for p in polled for c in p.valid],
        [d for p in polled for d in p.dead],
        "encoded",
        [x for p in polled for x in p.dropped],
        (1_000, 2_000),
    )


def offsets(polled: Polled[str]) -> list[tuple[int, int]]:
    return sorted(polled.positions())


def test_a_batch_nobody_has_stored_passes_whole_with_its_encoding() -> None:
    polled = batch(0, range(100, 110), dead={103}, dropped={105})
    fence = Fence(stored={0: 100}, last={0: 109}, gaps={})
    assert fence.fresh(polled) is polled  # the writer's encoding is kept: nothing to re-encode
    assert fence.positions_after() == {0: 110}


def test_what_another_instance_stored_is_dropped_from_valid_dead_and_dropped_alike() -> None:
    polled = batch(0, range(100, 110), dead={101, 107}, dropped={102, 108})
    fence = Fence(stored={0: 105}, last={0: 109}, gaps={})  # the new owner committed up to 104 first
    fresh = fence.fresh(polled)
    assert offsets(fresh) == [(0, o) for o in range(105, 110)]
    assert [d.offset for d in fresh.dead] == [107] and [x.offset for x in fresh.dropped] == [108]
    assert fresh.encoded is None  # the writer encodes the remainder anew, never the stale whole
    assert fresh.produced == polled.produced
    assert fence.positions_after() == {0: 110}


def test_a_batch_entirely_behind_the_stored_offset_writes_nothing_and_never_moves_it_back() -> None:
    polled = batch(0, range(100, 110))
    fence = Fence(stored={0: 250}, last={0: 109}, gaps={})
    assert len(fence.fresh(polled)) == 0
    assert fence.positions_after() == {0: 250}


def test_each_partition_is_fenced_on_its_own_stored_offset() -> None:
    polled = merged(batch(0, range(0, 10)), batch(1, range(40, 50)), batch(2, range(7, 9)))
    fence = Fence(stored={0: 0, 1: 45, 2: 100}, last={0: 9, 1: 49, 2: 8}, gaps={})
    fresh = fence.fresh(polled)
    assert offsets(fresh) == [(0, o) for o in range(10)] + [(1, o) for o in range(45, 50)]
    assert fence.positions_after() == {0: 10, 1: 50, 2: 100}


def test_a_partition_whose_batch_starts_past_the_stored_offset_is_a_gap_neither_written_nor_advanced() -> None:
    # Partition 1 resumes at 30 but the batch starts at 40: writing it would skip 30..39.
    polled = merged(batch(0, range(0, 5)), batch(1, range(40, 45), dead={41}, dropped={42}))
    fence = Fence(stored={0: 0, 1: 30}, last={0: 4, 1: 44}, gaps={1: 30})
    fresh = fence.fresh(polled)
    assert offsets(fresh) == [(0, o) for o in range(5)]
    assert fence.positions_after() == {0: 5}


def test_fencing_twice_with_what_the_first_commit_stored_leaves_nothing() -> None:
    """The stale instance's view: it fences with the offsets the new owner committed after
    writing the same batch, and finds nothing left to write."""
    polled = merged(batch(0, range(0, 20)), batch(1, range(0, 20)))
    first = Fence(stored={0: 0, 1: 0}, last={0: 19, 1: 19}, gaps={})
    assert first.fresh(polled) is polled
    second = Fence(stored=first.positions_after(), last=first.last, gaps={})
    assert len(second.fresh(polled)) == 0 and second.positions_after() == first.positions_after()
