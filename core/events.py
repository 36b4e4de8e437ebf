"""The event model: one frozen dataclass, its JSON wire format, and validation with reasons."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import msgspec

EVENT_TYPES = ("page_view", "add_to_cart", "purchase")
# A real event is a few hundred bytes; anything this large is abuse or a bug.
MAX_PAYLOAD_BYTES = 64 * 1024
# Amounts are NUMERIC(12, 2) in events_raw: no setting may allow more (core.config's
# MAX_EVENT_AMOUNT, by default far less, is the bound an event is held to).
MAX_AMOUNT = Decimal("9999999999.99")
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
CENT = Decimal("0.01")
# Events from before the platform existed or from the far future are clock bugs, not data.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(days=1)
# Dead-letter payloads are for diagnosis; the first few KiB tell what went wrong.
DEAD_LETTER_PAYLOAD_CHARS = 4096
# Metadata nested deeper than this is abuse: every later walk over it (redaction, erasure,
# PostgreSQL's jsonb) would recurse that deep, and Python's recursion limit is about 1,000.
MAX_METADATA_DEPTH = 32
# A JSON number with a fraction or an exponent must fit a double's range (what any JSON reader,
# a browser's included, can hold) and PostgreSQL's numeric: "1e-99999999999999999999" is no
# measurement, Decimal refuses it, and "1e131071" would be 131 KB of digits in every export.
MAX_NUMBER_EXPONENT = 308
# Digits after the point: a double's smallest value (4.9e-324) with its 17 significant digits.
MAX_NUMBER_FRACTION_DIGITS = 340


UUID_PATTERN = r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"


class _Wire(msgspec.Struct):
    """The fields of an event as they arrive, any JSON type: the slow path checks each itself so
    that every kind of bad input gets its own reason. Unknown fields are ignored."""

    event_id: Any = None
    user_id: Any = None
    event_type: Any = None
    event_timestamp: Any = None
    amount: Any = None
    metadata: Any = None


class _Typed(msgspec.Struct, gc=False):
    """The fast path: the shape of a valid event, checked by msgspec in C while it decodes.

    Whatever this rejects goes through ``_Wire`` and the checks below, which name the reason;
    whatever it accepts still passes the same range checks. The timestamp stays text here and is
    parsed by ``datetime.fromisoformat`` on both paths: msgspec's RFC 3339 parser rounds a
    seventh fractional digit (23:59:59.9999999 would become the next day) where fromisoformat
    truncates, and one event must never have two readings.
    """

    event_id: Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)]
    user_id: Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)] | Annotated[int, msgspec.Meta(gt=0)]
    event_type: Literal["page_view", "add_to_cart", "purchase"]
    event_timestamp: str
    amount: Decimal | None = None
    metadata: dict[str, Any] = {}


class _NumberOutOfRange(Exception):
    """Raised by the float hook; not a ValueError, which msgspec would re-word as a type error."""


def _json_number(text: str) -> Decimal:
    """A JSON number with a fraction or an exponent, exact (Decimal from its digits, never a
    binary float); _NumberOutOfRange beyond MAX_NUMBER_EXPONENT or MAX_NUMBER_FRACTION_DIGITS."""
    try:
        number = Decimal(text)
    except InvalidOperation as e:  # an exponent beyond Decimal's own range
        raise _NumberOutOfRange from e
    # adjusted() is the exponent of the first digit (of a zero, its exponent): cheap, where
    # as_tuple() copies the digits, so the fraction's length is read only from a long text.
    if not -MAX_NUMBER_FRACTION_DIGITS <= number.adjusted() <= MAX_NUMBER_EXPONENT:
        raise _NumberOutOfRange
    if len(text) > MAX_NUMBER_FRACTION_DIGITS:
        exponent = number.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -MAX_NUMBER_FRACTION_DIGITS:
            raise _NumberOutOfRange
    return number


def _invalid_number() -> InvalidEvent:
    return InvalidEvent(
        "invalid_number", f"a number is beyond 1e{MAX_NUMBER_EXPONENT} or has more than {MAX_NUMBER_FRACTION_DIGITS} decimals"
    )


# msgspec decodes in C about three times faster than json.loads; float_hook keeps a numeric
# amount exact and refuses numbers out of range, for the event alone.
_DECODER = msgspec.json.Decoder(_Wire, float_hook=_json_number)
_FAST_DECODER = msgspec.json.Decoder(_Typed, float_hook=_json_number)
_UUID = re.compile(UUID_PATTERN)
# A numeric user id (the platform's format before user ids were UUIDs) is a positive BIGINT.
_MAX_USER_ID = 2**63


class InvalidEvent(ValueError):
    """The message is not a valid event; ``reason`` is a short, stable category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def user_uuid(number: int) -> str:
    """The UUID of a numeric user id: the UUID whose 128 bits are the number (42 becomes
    ``00000000-0000-0000-0000-00000000002a``), as migration 009 converted the stored ids, so an
    event with a numeric id still joins its user."""
    h = f"{number:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Event(msgspec.Struct, frozen=True, gc=False):
    """A user event. ``amount`` is in euros, exact to the cent: set for purchases; on other
    events absent (None) or zero, as the sender wrote it, and never revenue.

    A msgspec Struct rather than a dataclass: built once per consumed event, and its C
    constructor is several times cheaper than a frozen dataclass's ``__init__``.
    """

    event_id: str  # canonical lower-case UUID text
    user_id: str  # canonical lower-case UUID text
    event_type: str
    event_timestamp: datetime  # parsed events: always in UTC
    amount: Decimal | None = None
    metadata: dict[str, Any] = {}

    @property
    def event_date(self) -> date:
        """The UTC day the event belongs to, in both the streaming and the batch path."""
        stamp = self.event_timestamp
        return (stamp if stamp.tzinfo is UTC else stamp.astimezone(UTC)).date()

    def to_json(self) -> bytes:
        """Wire format: amount as a string so no float ever touches money."""
        body: dict[str, Any] = {
            "event_id": str(self.event_id).lower(),
            "user_id": self.user_id,
            "event_type": self.event_type,
            "event_timestamp": self.event_timestamp.astimezone(UTC).isoformat(),
            "amount": None if self.amount is None else str(self.amount),
            "metadata": self.metadata,
        }
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    @property
    def key(self) -> bytes:
        """The Kafka key: all of a user's events go to one partition, in order."""
        return self.user_id.encode("ascii")


def _parse_amount(raw: Any, event_type: str, max_amount: Decimal) -> Decimal | None:
    if raw is None:
        if event_type == "purchase":
            raise InvalidEvent("missing_field", "purchase without amount")
        return None
    amount = _parse_money(raw)
    if amount > max_amount:
        raise InvalidEvent(AMOUNT_OUT_OF_RANGE, f"amount is above the maximum of {max_amount} per event")
    # The design's generator sends "amount": 0.0 on every event: zero is no amount, anything
    # else on a page view or a cart event is a bug upstream, not revenue.
    if event_type != "purchase" and amount != 0:
        raise InvalidEvent("unexpected_amount", f"{event_type} carries a non-zero amount")
    return amount


def _parse_money(raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise InvalidEvent("wrong_type", "amount must be a decimal string or number")
    try:
        amount = Decimal(raw)
    except InvalidOperation as e:
        raise InvalidEvent("invalid_amount", "amount is not a number") from e
    if not amount.is_finite():
        raise InvalidEvent("invalid_amount", "amount is not finite")
    if amount < 0:
        raise InvalidEvent("negative_amount", "amount is negative")
    if amount > MAX_AMOUNT:
        raise InvalidEvent(AMOUNT_OUT_OF_RANGE, f"amount is above the maximum of {MAX_AMOUNT} per event")
    if amount != amount.quantize(CENT):
        raise InvalidEvent("invalid_amount", "amount has more than two decimals")
    return amount.quantize(CENT)


def _parse_timestamp(raw: Any, now: datetime) -> datetime:
    if not isinstance(raw, str):
        raise InvalidEvent("wrong_type", "event_timestamp must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as e:
        raise InvalidEvent("invalid_timestamp", "event_timestamp is not ISO 8601") from e
    if parsed.tzinfo is None:
        raise InvalidEvent("invalid_timestamp", "event_timestamp has no time zone")
    if parsed.tzinfo is not UTC:
        parsed = parsed.astimezone(UTC)
    if parsed < EARLIEST_EVENT or parsed > now + MAX_CLOCK_SKEW:
        raise InvalidEvent("absurd_timestamp", "event_timestamp is out of the plausible range")
    return parsed


def parse_event(payload: bytes | None, now: datetime | None = None, max_amount: Decimal = MAX_AMOUNT) -> Event:
    """Decode and validate one message; raise InvalidEvent with a reason category. An amount
    above ``max_amount`` (Settings.max_event_amount, for the consumers and the collector alike)
    is ``amount_out_of_range``."""
    if payload is None:
        raise InvalidEvent("empty_payload")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidEvent("oversized_payload", f"{len(payload)} bytes")
    if b"\\u0000" in payload:
        # PostgreSQL's jsonb and text cannot hold NUL characters.
        raise InvalidEvent("invalid_characters", "payload contains a NUL character")
    now = now or datetime.now(UTC)
    try:
        fast = _FAST_DECODER.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        event = _parse_slowly(payload, now, max_amount)
        _check_depth(payload, event.metadata)
        return event
    except RecursionError as e:
        raise _too_deep() from e
    except _NumberOutOfRange as e:
        raise _invalid_number() from e
    _check_depth(payload, fast.metadata)
    user_id = fast.user_id
    if isinstance(user_id, int):
        if user_id >= _MAX_USER_ID:
            raise InvalidEvent("invalid_user_id", "user_id out of range")
        user_id = user_uuid(user_id)
    event_id = fast.event_id
    # Ids nearly always arrive in lower case: checking is a scan, lowering a new string.
    return Event(
        event_id if event_id.islower() else event_id.lower(),
        user_id if user_id.islower() else user_id.lower(),
        fast.event_type,
        _parse_timestamp(fast.event_timestamp, now),
        _parse_amount(fast.amount, fast.event_type, max_amount),
        fast.metadata,
    )


def _too_deep() -> InvalidEvent:
    return InvalidEvent("too_deep", f"nested deeper than {MAX_METADATA_DEPTH} levels")


def _check_depth(payload: bytes, metadata: dict[str, Any]) -> None:
    """Refuse metadata nested deeper than MAX_METADATA_DEPTH. Counting the brackets in the
    payload (in C) rules out nearly every event before the decoded metadata is walked."""
    if payload.count(b"{") + payload.count(b"[") <= MAX_METADATA_DEPTH:
        return
    level: list[tuple[Any, int]] = [(metadata, 1)]
    while level:
        value, depth = level.pop()
        if depth > MAX_METADATA_DEPTH:
            raise _too_deep()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        level.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _decode_slowly(payload: bytes) -> _Wire:
    """Decode any JSON object; name why a message is not one."""
    try:
        return _DECODER.decode(payload)
    except msgspec.ValidationError as e:
        # msgspec checks the top-level type before the rest of the input: only a valid JSON
        # document that is not an object is "not_an_object".
        try:
            msgspec.json.decode(payload)
        except msgspec.ValidationError as too_long:  # an integer of thousands of digits
            raise InvalidEvent("invalid_number", "an integer has more digits than can be decoded") from too_long
        except (msgspec.DecodeError, UnicodeDecodeError) as not_json:
            # A string of invalid UTF-8 ('"\xb8...') fails with UnicodeDecodeError here.
            raise InvalidEvent("not_json") from not_json
        except RecursionError as deep:
            raise _too_deep() from deep
        raise InvalidEvent("not_an_object") from e
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise InvalidEvent("not_json") from e
    except RecursionError as e:
        raise _too_deep() from e
    except _NumberOutOfRange as e:
        raise _invalid_number() from e


def _check_event_id(raw: Any) -> str:
    if not isinstance(raw, str):
        raise InvalidEvent("wrong_type", "event_id must be a string")
    if not _UUID.match(raw):
        raise InvalidEvent("invalid_event_id", "event_id is not a UUID")
    return raw.lower()


def check_user_id(raw: Any) -> str:
    """A user id as an event carries it (a UUID string or a positive integer), canonical; raise
    InvalidEvent otherwise. The collector checks the user ids of consent changes with it."""
    if isinstance(raw, str):
        if not _UUID.match(raw):
            raise InvalidEvent("invalid_user_id", "user_id is not a UUID")
        return raw.lower()
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidEvent("wrong_type", "user_id must be a UUID string (or a positive integer)")
    if not 0 < raw < _MAX_USER_ID:
        raise InvalidEvent("invalid_user_id", "user_id out of range")
    return user_uuid(raw)


def _check_event_type(raw: Any) -> str:
    if not isinstance(raw, str):
        raise InvalidEvent("wrong_type", "event_type must be a string")
    if raw not in EVENT_TYPES:
        raise InvalidEvent("unknown_event_type")
    return raw


def _parse_slowly(payload: bytes, now: datetime, max_amount: Decimal = MAX_AMOUNT) -> Event:
    """Decode a message the fast path rejected, naming what is wrong with it."""
    body = _decode_slowly(payload)
    for name in ("event_id", "user_id", "event_type", "event_timestamp"):
        if getattr(body, name) is None:
            raise InvalidEvent("missing_field", name)
    event_id = _check_event_id(body.event_id)
    user_id = check_user_id(body.user_id)
    event_type = _check_event_type(body.event_type)
    timestamp = _parse_timestamp(body.event_timestamp, now)
    amount = _parse_amount(body.amount, event_type, max_amount)
    metadata = body.metadata or {}
    if not isinstance(metadata, dict):
        raise InvalidEvent("wrong_type", "metadata must be an object")
    return Event(event_id, user_id, event_type, timestamp, amount, metadata)
