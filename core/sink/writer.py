"""The writer side of a sink: what a consumer says a batch of valid events becomes."""

from __future__ import annotations

from typing import Protocol, TypeVar

import psycopg2.extensions

from core.db import Cursor
from core.sink.batch import Consumed, SinkBatch

E = TypeVar("E")


class SinkWriter(Protocol[E]):
    """Writes typed batches; never commits, never touches offsets (the checkpoint owns those).

    ``encode`` does a batch's CPU work in the polling thread while the previous batch is being
    written; ``write`` runs inside the sink's transaction. A writer whose ``write`` raises a data
    error (SQLSTATE class 22 or 23) gets the batch again in smaller pieces, each under a
    savepoint, until the refused events are found: ``write`` must therefore be repeatable on any
    subset of a batch within one transaction.
    """

    def prepare(self, conn: psycopg2.extensions.connection) -> None:
        """Once per connection (temporary tables, prepared statements)."""

    def encode(self, events: list[Consumed]) -> E:
        """Turn a batch of valid events into what ``write`` sends; no database access."""

    def write(self, cur: Cursor, batch: SinkBatch[E]) -> None:
        """Write one encoded batch with ``cur``; never commit."""
