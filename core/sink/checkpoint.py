"""The checkpoint: owns the consumer's progress inside each transaction (fence and advance).

Like quix-streams' checkpoint, it alone decides which messages of a batch are new and what the
stored offsets become; writers only write. The stored offsets of the batch's partitions are
locked first, so a stale instance that still holds a revoked partition waits, then sees what the
new owner stored and drops it instead of writing it twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from core import progress
from core.db import Cursor
from core.sink.batch import Polled

E = TypeVar("E")
# Telemetry rows older than progress.BATCH_HISTORY are pruned once in this many batches.
PRUNE_EVERY_BATCHES = 500


@dataclass(frozen=True)
class Fence:
    """The stored offsets of one transaction, locked, and the partitions to rewind."""

    stored: dict[int, int]
    last: dict[int, int]
    # Partitions whose batch starts past the stored offset (a message would be skipped): nothing
    # of them is written, and the consumer seeks back to the stored offset.
    gaps: dict[int, int]

    def fresh(self, polled: Polled[E]) -> Polled[E]:
        """The messages of ``polled`` not stored yet (all of them, but after a rebalance)."""
        valid = [c for c in polled.valid if c.partition not in self.gaps and c.offset >= self.stored[c.partition]]
        dead = [d for d in polled.dead if d.partition not in self.gaps and d.offset >= self.stored[d.partition]]
        dropped = [x for x in polled.dropped if x.partition not in self.gaps and x.offset >= self.stored[x.partition]]
        if len(valid) == len(polled.valid) and len(dead) == len(polled.dead) and len(dropped) == len(polled.dropped):
            return polled
        return Polled(valid, dead, None, dropped, polled.produced)

    def positions_after(self) -> dict[int, int]:
        """The next offset of each partition of the batch once it is committed (gaps excluded)."""
        return {p: max(self.stored[p], last + 1) for p, last in self.last.items() if p not in self.gaps}


class Checkpoint:
    """Progress of ``group`` on ``topic``: opened and committed inside the sink's transaction."""

    def __init__(self, group: str, topic: str) -> None:
        self.group = group
        self.topic = topic
        self.commits = 0

    def stored(self, cur: Cursor, partitions: Iterable[int]) -> dict[int, int]:
        """Where each partition resumes (absent: never consumed)."""
        return progress.stored(cur, self.group, self.topic, partitions)

    def open(self, cur: Cursor, positions: Iterable[tuple[int, int]]) -> Fence:
        """Lock the stored offsets of the batch's partitions and say what is new."""
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for partition, offset in positions:
            if partition not in first or offset < first[partition]:
                first[partition] = offset
            if partition not in last or offset > last[partition]:
                last[partition] = offset
        stored = progress.lock(cur, self.group, self.topic, first)
        gaps = {p: stored[p] for p in first if first[p] > stored[p]}
        return Fence(stored, last, gaps)

    def commit(self, cur: Cursor, fence: Fence, events: int, dead_letters: int, produced: tuple[int, int] | None = None) -> None:
        """Advance the offsets past the batch and record it (with when its oldest and newest event
        were produced, in Kafka milliseconds); the caller's transaction commits."""
        advanced = {p: offset for p, offset in fence.positions_after().items() if offset > fence.stored[p]}
        progress.advance(cur, self.group, self.topic, advanced)
        progress.record_batch(
            cur, self.group, self.topic, events, dead_letters, prune=self.commits % PRUNE_EVERY_BATCHES == 0, produced=produced
        )
        self.commits += 1
