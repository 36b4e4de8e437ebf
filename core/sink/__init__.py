"""The one sink mechanism both consumers share: exactly-once from Kafka into PostgreSQL.

``consumer`` runs the loop (poll, validate, pipeline, retry, isolate refused events),
``checkpoint`` owns the progress of each transaction (fence and offsets, through
core.progress), ``writer`` is what a consumer implements (typed batches in, rows out), and
``batch`` holds the types that travel between them.
"""

from core.sink.batch import Consumed, DeadLetter, SinkBatch
from core.sink.consumer import OffsetsBeyondLog, Sink, SinkStats
from core.sink.writer import SinkWriter

__all__ = ["Consumed", "DeadLetter", "OffsetsBeyondLog", "Sink", "SinkBatch", "SinkStats", "SinkWriter"]
