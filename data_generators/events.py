"""Synthetic events: the mix, metadata and timing of the generator's traffic, reproducible by seed.

The library behind ``python -m data_generators.generate_events`` (which paces and produces what
this module makes) and the benchmarks.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.events import Event

EVENT_MIX = {"page_view": 70, "add_to_cart": 20, "purchase": 10}
DEVICES = ("desktop", "mobile", "tablet")
BROWSERS = ("chrome", "firefox", "safari", "edge")
CATEGORIES = ("shoes", "books", "garden", "electronics", "toys", "kitchen", "sports", "beauty")

# Event ids are UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, the
# last 48 of which are a counter (the RFC's "monotonic random" method). Ids of one run never
# repeat, and ids made later sort later, so PostgreSQL appends them at the right edge of the
# primary-key index instead of writing to random pages of a ten-million-entry tree.
_COUNTER_BITS = 48
# Pre-serialised endings per event slot: the 70/20/10 mix times this many metadata variants.
METADATA_VARIANTS = 64
# Relative traffic per UTC hour for --backfill-days: quiet nights, a lunch bump, busy evenings.
HOURLY_TRAFFIC = (2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 8, 9, 8, 7, 7, 8, 9, 10, 10, 9, 7, 5, 3)
MAX_BACKFILL_DAYS = 365
BACKFILL_CHUNK = 20
# Purchase amounts are redrawn this often (in chunks), so revenue varies like real orders.
PURCHASE_REDRAW_CHUNKS = 20
# Events serialised and handed to the producer per step; also the pacing granularity.
CHUNK = 500


class EventFactory:
    """Random but reproducible events for a list of users (ids and timestamps aside).

    ``messages()`` is the fast path the generator uses: it writes the wire format directly from
    templates, one format call per event, ready for ``Producer.produce_batch``; ``make()`` builds the same kind of event as an
    ``Event``. A test checks both parse to valid events with the same mix.
    """

    def __init__(self, user_ids: list[str], seed: int | None) -> None:
        self.rng = random.Random(seed)
        self.user_ids = user_ids
        # 100 slots filled by weight: one random() picks a type with the exact mix.
        self.kind_table = [kind for kind, weight in EVENT_MIX.items() for _ in range(weight)]
        # Every slot's JSON ending written out; purchases' amounts are redrawn every few chunks.
        self.endings = [
            f',"event_type":"{kind}","amount":null,"metadata":{self._metadata_json(kind)}}}'
            for kind in self.kind_table
            for _ in range(METADATA_VARIANTS)
        ]
        self._purchase_slots = [i for i, ending in enumerate(self.endings) if '"purchase"' in ending]
        self.purchase_metadata = [self._metadata_json("purchase") for _ in range(METADATA_VARIANTS)]
        self._draw_purchase_endings()
        self._chunks = 0
        # Ids are unique per process whatever the seed: two runs with one seed must not collide.
        # The counter starts low enough never to wrap (2**47 events: years at a million a second).
        self._id_rng = random.Random()
        self._sequence = self._id_rng.getrandbits(_COUNTER_BITS - 1)

    @property
    def user_ids(self) -> list[str]:
        """The users' UUIDs, as canonical text."""
        return self._user_ids

    @user_ids.setter
    def user_ids(self, ids: list[str]) -> None:
        self._user_ids = ids
        self._user_indices = range(len(ids))

    def _metadata(self, kind: str) -> dict[str, str | int]:
        rng = self.rng
        category, product = rng.choice(CATEGORIES), rng.randrange(1, 5000)
        metadata: dict[str, str | int] = {
            "page": f"/{category}/product/{product}" if kind != "purchase" else "/checkout/confirmation",
            "device": rng.choice(DEVICES),
            "browser": rng.choice(BROWSERS),
        }
        if kind != "page_view":
            metadata["product_id"] = product
        return metadata

    def _metadata_json(self, kind: str) -> str:
        return json.dumps(self._metadata(kind), separators=(",", ":"))

    def _amount_cents(self) -> int:
        # Whole cents, from 5.00 to 500.00 EUR: exact, never a float.
        return self.rng.randrange(500, 50_001)

    def backfill_time(self, now: datetime, days: float) -> datetime:
        """A moment in the last ``days`` days, more likely at busy hours (HOURLY_TRAFFIC)."""
        top = max(HOURLY_TRAFFIC)
        while True:
            moment = now - timedelta(seconds=self.rng.random() * days * 86_400)
            if self.rng.random() * top < HOURLY_TRAFFIC[moment.astimezone(UTC).hour]:
                return moment

    def _id_prefix(self, now: datetime) -> str:
        """The first 20 characters of a UUIDv7 for ``now``: time, version, variant, random bits."""
        ms = int(now.timestamp() * 1000)
        rand_a, rand_b = self._id_rng.getrandbits(12), self._id_rng.getrandbits(14)
        return f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-{0x7000 | rand_a:04x}-{0x8000 | rand_b:04x}-"

    def _take_sequence(self, n: int) -> int:
        first = self._sequence
        self._sequence += n
        return first

    def make(self, now: datetime) -> Event:
        rng = self.rng
        kind = self.kind_table[int(rng.random() * len(self.kind_table))]
        amount = Decimal(self._amount_cents()).scaleb(-2) if kind == "purchase" else None
        return Event(
            event_id=f"{self._id_prefix(now)}{self._take_sequence(1):012x}",
            user_id=self.user_ids[int(rng.random() * len(self.user_ids))],
            event_type=kind,
            event_timestamp=now,
            amount=amount,
            metadata=self._metadata(kind),
        )

    def messages(self, n: int, now: datetime) -> list[dict[str, Any]]:
        """``n`` events as produce_batch messages (key and JSON value as bytes), all stamped ``now``.

        The random picks come from ``Random.choices`` (a loop in C-backed calls), and each value is
        one f-string in a comprehension (the generator's speed rests on it: ``make bench``).
        """
        self._chunks += 1
        if self._chunks % PURCHASE_REDRAW_CHUNKS == 0:
            self._draw_purchase_endings()
        head = f'{{"event_timestamp":"{now.astimezone(UTC).isoformat()}","event_id":"{self._id_prefix(now)}'
        strs = self._user_ids
        first = self._take_sequence(n)
        # In index order: a million users' ids are 60 MB of small objects, and visiting them in
        # address order instead of at random halves the time spent waiting on memory. The key
        # is encoded from the same string rather than read from a second list (one miss, not two).
        users = sorted(self.rng.choices(self._user_indices, k=n))
        return [
            {"key": (user := strs[u]).encode(), "value": f'{head}{sequence:012x}","user_id":"{user}"{ending}'.encode()}
            for sequence, u, ending in zip(range(first, first + n), users, self.rng.choices(self.endings, k=n), strict=True)
        ]

    def _draw_purchase_endings(self) -> None:
        """New random amounts for every purchase slot."""
        for i in self._purchase_slots:
            cents = self._amount_cents()
            self.endings[i] = (
                f',"event_type":"purchase","amount":"{cents // 100}.{cents % 100:02d}",'
                f'"metadata":{self.purchase_metadata[i % METADATA_VARIANTS]}}}'
            )
