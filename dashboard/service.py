"""What a request to the dashboard does: read the database and ask Kafka for its end offsets, side by
side, and build the summary (dashboard.summary).

Kafka is asked at most every KAFKA_FRESH_S whatever the number of screens watching, and one probe
at a time; when it does not answer, the lag is shown as unknown and it is asked again after
KAFKA_RETRY_S, so a broker that is down costs a refresh its timeout at most that often. What the
database knows is always shown, a lost broker above all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from analytics import funnels
from core import kafka, pool
from core.config import KafkaSettings, Settings
from core.errors import ServiceUnavailable
from dashboard import queries, summary

logger = logging.getLogger(__name__)

# The page asks for a new summary this often.
REFRESH_S = 5
# End offsets this young are good enough: the consumers' own figures move once a second at most.
KAFKA_FRESH_S = 3.0
# After Kafka did not answer, wait this long before asking again (a probe may wait seconds for it).
KAFKA_RETRY_S = 15.0

EndOffsetsProbe = Callable[[KafkaSettings, str], dict[int, int]]
# Today's funnel of people is computed from today's raw events (the day has no summaries yet),
# which costs more as the day fills: it is read again once it is older than this many times what
# its last reading cost, so it takes at most a tenth of a connection's time; a cheap one is read
# with every summary. Never older than FUNNEL_MAX_AGE_S.
FUNNEL_COST_FACTOR = 10.0
FUNNEL_MAX_AGE_S = 60.0


class FunnelCache:
    """Today's ordered funnel of people, kept while it is young compared with its cost."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._value: funnels.Funnel | None = None
        self._read_at = 0.0
        self._cost_s = 0.0

    def fresh(self) -> funnels.Funnel | None:
        """The cached funnel while it may still be shown; None when it is to be read again."""
        if self._value is None:
            return None
        age = self.clock() - self._read_at
        return self._value if age < min(FUNNEL_MAX_AGE_S, FUNNEL_COST_FACTOR * self._cost_s) else None

    def keep(self, funnel: funnels.Funnel, cost_s: float | None) -> None:
        """Remember a funnel read just now at ``cost_s`` seconds (None: the cached one was shown)."""
        if cost_s is not None:
            self._value, self._read_at, self._cost_s = funnel, self.clock(), cost_s


class EndOffsets:
    """Kafka's end offset of each partition of the topic, asked at most every KAFKA_FRESH_S; None
    while Kafka does not answer."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        probe: EndOffsetsProbe = kafka.end_offsets,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.probe = probe
        self.clock = clock
        self._lock = asyncio.Lock()
        self._value: dict[int, int] | None = None
        self._asked_at: float | None = None
        self._reachable = True

    async def get(self) -> dict[int, int] | None:
        async with self._lock:  # one probe at a time; the others wait for its answer
            now = self.clock()
            wait = KAFKA_FRESH_S if self._value is not None else KAFKA_RETRY_S
            if self._asked_at is None or now - self._asked_at >= wait:
                self._value = await asyncio.to_thread(self._ask)
                self._asked_at = self.clock()
            return self._value

    def _ask(self) -> dict[int, int] | None:
        try:
            ends = self.probe(self.settings, self.topic)
        except ServiceUnavailable as e:
            if self._reachable:
                logger.warning("lag unknown: %s", e)
            self._reachable = False
            return None
        if not self._reachable:
            logger.info("Kafka at %s answers again", self.settings.bootstrap_servers)
        self._reachable = True
        return ends


class Dashboard:
    """The pool, the end offsets and the topic: everything a summary is made of; and the settings."""

    def __init__(self, database: pool.Database, settings: Settings, ends: EndOffsets | None = None) -> None:
        self.database = database
        self.settings = settings
        self.topic = settings.kafka.topic
        self.ends = EndOffsets(settings.kafka, self.topic) if ends is None else ends
        self.funnel = FunnelCache()

    async def summary(self) -> dict[str, Any]:
        """The summary now (dashboard.summary.build); the database and Kafka are asked side by side."""
        topic, window_s = self.topic, self.settings.analytics_funnel_window_s
        cached = self.funnel.fresh()
        snapshot, ends = await asyncio.gather(
            self.database.call(lambda cur: queries.read(cur, topic, window_s, cached)), self.ends.get()
        )
        self.funnel.keep(snapshot.people_funnel, snapshot.funnel_cost_s)
        return summary.build(snapshot, ends, topic, REFRESH_S, min_cell_users=self.settings.report_min_cell_users)
