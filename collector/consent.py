"""A consent change sent by a client (``POST /v1/consent``), checked, then appended to the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from core import consent
from core.db import Cursor

# One rule for a user id, in events and in consent changes.
from core.events import InvalidEvent, check_user_id
from core.web import Problem

# The name sql/017 gives the refusal of an analytics grant while a restriction is in force.
RESTRICTED = "consent_while_restricted"
# The name sql/035 gives the refusal of any grant for a user id that was erased.
ERASED = "consent_after_erasure"
# What a client is told for each refusal the database gives, answered 409: the grant conflicts
# with a standing decision about the person, and sending it again cannot help.
REFUSALS = {
    RESTRICTED: (
        "processing_restricted",
        "processing of this user is restricted (Art. 18) until a DPO lifts it: the grant was not recorded",
    ),
    ERASED: (
        "consent_after_erasure",
        "this user id was erased (Art. 17): only a new identity can give consent; the grant was not recorded",
    ),
}
# A consent change is under 200 bytes; anything far larger is not one.
MAX_BODY_BYTES = 4096


class _Wire(msgspec.Struct):
    """The fields as they arrive, any JSON type, so each mistake gets its own message."""

    user_id: Any = None
    purpose: Any = None
    granted: Any = None


@dataclass(frozen=True)
class ConsentChange:
    """A checked change: ``user_id`` is canonical UUID text (a numeric id becomes its UUID)."""

    user_id: str
    purpose: str
    granted: bool


def parse_change(body: bytes) -> ConsentChange:
    """Check a request body; raise Problem: 400 when it is not a JSON object, 422 naming the field
    that is missing or wrong."""
    try:
        wire = msgspec.json.decode(body, type=_Wire)
    except msgspec.ValidationError as e:
        raise Problem(
            400, "not_an_object", 'the body must be a JSON object: {"user_id": ..., "purpose": ..., "granted": ...}'
        ) from e
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise Problem(400, "malformed_json", "the body is not valid JSON; check the request's encoding") from e
    except RecursionError as e:
        raise Problem(400, "too_deep", "the body is nested too deeply to be a consent change") from e
    for name in ("user_id", "purpose", "granted"):
        if getattr(wire, name) is None:
            raise Problem(422, "missing_field", f"{name} is required")
    try:
        user_id = check_user_id(wire.user_id)
    except InvalidEvent as e:
        raise Problem(422, e.reason, f"{e.detail}; send the same user_id as in the user's events") from e
    if not isinstance(wire.purpose, str) or not consent.PURPOSE_PATTERN.match(wire.purpose):
        raise Problem(422, "invalid_purpose", "purpose must be 1-40 lower-case letters, digits or '_', starting with a letter")
    if not isinstance(wire.granted, bool):
        raise Problem(422, "wrong_type", "granted must be true or false")
    return ConsentChange(user_id, wire.purpose, wire.granted)


def record(cur: Cursor, change: ConsentChange, key_name: str) -> datetime:
    """Append the change to consent_ledger as recorded by the key ``key_name``; return when it
    takes effect (now, by the database's clock)."""
    return consent.record(cur, change.user_id, change.granted, source=f"collector:{key_name}", purpose=change.purpose)
