"""What travels through the sink: consumed events, dead letters, and the typed batch a writer gets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Generic, NamedTuple, TypeVar

import msgspec

from core.events import Event

E = TypeVar("E")


class Consumed(msgspec.Struct, frozen=True, gc=False):
    """A valid event and where it came from. Built once per event: a msgspec Struct's C
    constructor costs a tenth of a NamedTuple's."""

    event: Event
    partition: int
    offset: int


class DeadLetter(NamedTuple):
    """A message that failed validation, or that the database refused (``detail`` then holds
    the database's reason: SQLSTATE and primary message, never the data)."""

    partition: int
    offset: int
    reason: str
    payload: str
    detail: str | None = None


class Dropped(NamedTuple):
    """A valid event the consent ledger says must not count: neither stored nor aggregated, only
    counted per day and reason (its offset still advances with the batch)."""

    partition: int
    offset: int
    event_date: date
    reason: str


@dataclass(frozen=True)
class SinkBatch(Generic[E]):
    """What a writer writes in one transaction: the events and their encoding (typed by writer)."""

    events: list[Consumed]
    encoded: E


@dataclass
class Polled(Generic[E]):
    """One poll's worth of messages, split into valid events and dead letters, in Kafka order
    within each partition; ``encoded`` is the writer's encoding of all of ``valid`` (None when
    it must be encoded anew, as after a split)."""

    valid: list[Consumed]
    dead: list[DeadLetter]
    encoded: E | None
    dropped: list[Dropped] = field(default_factory=list)
    # Kafka timestamps (ms) of the oldest and the newest message polled: when they were produced.
    produced: tuple[int, int] | None = None
    # dropped_counts(), worked out once: the transaction writes it and the metrics add it up.
    _dropped_counts: Counter[tuple[date, str]] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.valid) + len(self.dead) + len(self.dropped)

    def positions(self) -> Iterator[tuple[int, int]]:
        """(partition, offset) of every message."""
        for c in self.valid:
            yield c.partition, c.offset
        for d in self.dead:
            yield d.partition, d.offset
        for x in self.dropped:
            yield x.partition, x.offset

    def dropped_counts(self) -> Counter[tuple[date, str]]:
        """Dropped events per (UTC event day, reason); the batch's messages do not change."""
        if self._dropped_counts is None:
            self._dropped_counts = Counter((x.event_date, x.reason) for x in self.dropped)
        return self._dropped_counts

    def halves(self) -> tuple[Polled[E], Polled[E]] | None:
        """The first and the second half of every partition's messages, or None when the batch
        cannot be split (one message per partition). Committing the halves in order advances
        each partition's offset twice and skips nothing."""
        offsets: dict[int, list[int]] = {}
        for partition, offset in self.positions():
            offsets.setdefault(partition, []).append(offset)
        cut = {p: sorted(found)[len(found) // 2] for p, found in offsets.items()}
        first = Polled[E](
            [c for c in self.valid if c.offset < cut[c.partition]],
            [d for d in self.dead if d.offset < cut[d.partition]],
            None,
            [x for x in self.dropped if x.offset < cut[x.partition]],
            self.produced,
        )
        if not len(first):
            return None
        second = Polled[E](
            [c for c in self.valid if c.offset >= cut[c.partition]],
            [d for d in self.dead if d.offset >= cut[d.partition]],
            None,
            [x for x in self.dropped if x.offset >= cut[x.partition]],
            self.produced,
        )
        return first, second
