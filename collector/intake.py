"""Each event of a request validated on its own bytes, and the per-event results a client gets back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.events import MAX_AMOUNT, InvalidEvent, parse_event

BROKER_UNAVAILABLE = "broker_unavailable"


@dataclass(frozen=True, slots=True)
class Valid:
    """An event to produce: its id for the client, its Kafka key (the user) and its bytes as sent."""

    event_id: str
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Invalid:
    """An event not taken: ``reason`` is InvalidEvent's stable category (or ``broker_unavailable``)."""

    reason: str
    detail: str


Outcome = Valid | Invalid


def validate(raws: Sequence[bytes], now: datetime, max_amount: Decimal = MAX_AMOUNT) -> list[Outcome]:
    """Validate each event with core.events.parse_event, in request order; ``now`` is the
    request's time, against which future timestamps are judged, ``max_amount`` the most an event
    may carry (MAX_EVENT_AMOUNT, as in the consumers)."""
    outcomes: list[Outcome] = []
    for raw in raws:
        try:
            event = parse_event(raw, now, max_amount)
        except InvalidEvent as e:
            outcomes.append(Invalid(e.reason, e.detail))
        else:
            outcomes.append(Valid(event.event_id, event.key, raw))
    return outcomes


def undelivered(detail: str) -> Invalid:
    """A valid event the broker did not acknowledge: not in Kafka, so the client must send it again."""
    return Invalid(BROKER_UNAVAILABLE, detail)


def results(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The response body: counts and one result per event, in request order."""
    items: list[dict[str, str]] = [
        {"status": "accepted", "event_id": o.event_id}
        if isinstance(o, Valid)
        else {"status": "rejected", "reason": o.reason, "detail": o.detail}
        for o in outcomes
    ]
    accepted = sum(1 for o in outcomes if isinstance(o, Valid))
    return {"accepted": accepted, "rejected": len(outcomes) - accepted, "results": items}
