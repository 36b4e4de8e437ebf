"""Each event of a request validated on its own bytes, redacted, and the per-event results a client gets back.

Personal data never reaches Kafka: each valid event's metadata goes through the one redactor
(core.pii), as the raw consumer's would, and an event with something redacted is sent re-encoded
with the redacted metadata (its other fields as the client wrote them); any other event goes as
the bytes the client sent. The topic thus holds what ``events_raw`` would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from core.config import MetadataLimits
from core.events import MAX_AMOUNT, Event, InvalidEvent, parse_event
from core.pii import METADATA_ENCODER, metadata_always_fits, metadata_refusal, redact_serialised
from core.web import Problem

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


# An event re-encoded after redaction: every field as decoded, numbers exact.
_EVENT_DECODER = msgspec.json.Decoder(dict[str, Any], float_hook=Decimal)
_DEFAULT_LIMITS = MetadataLimits()


def validate(
    raws: Sequence[bytes], now: datetime, limits: MetadataLimits = _DEFAULT_LIMITS, max_amount: Decimal = MAX_AMOUNT
) -> list[Outcome]:
    """Validate each event with core.events.parse_event, in request order, and redact the valid
    ones' metadata; ``now`` is the request's time, against which future timestamps are judged,
    ``max_amount`` the most an event may carry (MAX_EVENT_AMOUNT, as in the consumers).

    Raises Problem (413, ``too_large``) when an event's metadata is over a bound of ``limits``:
    the redactor's work per event is bounded, and the client must send less, not again.
    """
    outcomes: list[Outcome] = []
    parsed: list[tuple[int, Event, bytes]] = []
    for index, raw in enumerate(raws):
        try:
            event = parse_event(raw, now, max_amount)
        except InvalidEvent as e:
            outcomes.append(Invalid(e.reason, e.detail))
            continue
        parsed.append((index, event, raw))
        outcomes.append(Valid(event.event_id, event.key, raw))
    if not parsed:
        return outcomes
    # Serialised once, for the bounds and the redactor both; only metadata longer than any that
    # fits every bound (nearly none) is walked for its values and strings.
    metadatas = [event.metadata for _, event, _ in parsed]
    serialised = list(map(METADATA_ENCODER.encode, metadatas))
    fits = metadata_always_fits(limits)
    for i in [i for i, text in enumerate(serialised) if len(text) > fits]:
        if refusal := metadata_refusal(metadatas[i], limits, serialised[i]):
            raise Problem(413, "too_large", f"event {parsed[i][0]}: {refusal} (METADATA_MAX_*): send less metadata")
    serialised, redacted = redact_serialised(metadatas, Counter(), serialised)
    for i in redacted:
        index, event, raw = parsed[i]
        outcomes[index] = Valid(event.event_id, event.key, _with_metadata(raw, serialised[i]))
    return outcomes


def _with_metadata(raw: bytes, metadata: bytes) -> bytes:
    """The event's bytes with ``metadata`` (redacted, serialised) in place of its own; only
    called for an event that parsed, so ``raw`` is a JSON object."""
    document = _EVENT_DECODER.decode(raw)
    document["metadata"] = msgspec.Raw(metadata)
    return METADATA_ENCODER.encode(document)


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
