"""A request body split into each event's raw bytes, exactly as the client sent them.

The collector never re-encodes an event: each one is validated by ``core.events.parse_event`` on
its own bytes and those bytes go to Kafka, so what the consumers read is what the client wrote and
there is one event model, not two. msgspec splits a JSON array into ``msgspec.Raw`` slices in C
without decoding the events themselves.
"""

from __future__ import annotations

import contextlib

import msgspec

from core.web import Problem

JSON = "application/json"
NDJSON = "application/x-ndjson"
MEDIA_TYPES = (JSON, NDJSON)

_ARRAY_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_ONE_DECODER = msgspec.json.Decoder(msgspec.Raw)
_WHITESPACE = b" \t\r\n"


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case and without parameters
    (``application/json; charset=utf-8`` is ``application/json``); empty when absent."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def split_events(body: bytes, kind: str, max_events: int) -> list[bytes]:
    """The raw bytes of each event in ``body``, in order.

    ``kind`` is ``application/json`` (one event object or an array of them) or
    ``application/x-ndjson`` (one event per line; blank lines are skipped). Raises Problem: 400
    for an empty or malformed JSON body or one that is neither an object nor an array, 413 for more
    than ``max_events`` events. A malformed NDJSON line is not a 400: each line is an event of its
    own, rejected on its own (reason ``not_json``) while the other lines are accepted.
    """
    stripped = body.strip(_WHITESPACE)
    if not stripped:
        raise Problem(400, "empty_body", "the body is empty: send one event object, a JSON array of events, or NDJSON lines")
    events = _split_ndjson(stripped) if kind == NDJSON else _split_json(stripped)
    if not events:
        raise Problem(400, "no_events", "the body holds no event: send at least one")
    if len(events) > max_events:
        raise Problem(
            413,
            "too_many_events",
            f"{len(events)} events in one request; send at most {max_events} per request (split the batch)",
        )
    return events


def _split_json(body: bytes) -> list[bytes]:
    first = body[:1]
    try:
        if first == b"[":
            return [bytes(raw) for raw in _ARRAY_DECODER.decode(body)]
        if first == b"{":
            # Well-formed JSON, or a 400 for the whole body. One event nested too deep is that
            # event's fault: its own validation says so (too_deep).
            with contextlib.suppress(RecursionError):
                _ONE_DECODER.decode(body)
            return [body]
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise Problem(400, "malformed_json", f"the body is not valid JSON ({_reason(e)}); check the request's encoding") from e
    except RecursionError as e:
        raise Problem(400, "too_deep", "the body is nested too deeply to be a batch of events") from e
    raise Problem(400, "not_an_event", "the JSON body must be an event object or an array of event objects")


def _split_ndjson(body: bytes) -> list[bytes]:
    lines = (line.strip(_WHITESPACE) for line in body.split(b"\n"))
    return [line for line in lines if line]


def _reason(error: Exception) -> str:
    """msgspec's message names the problem and its byte offset, never the content."""
    text = str(error).strip() or type(error).__name__
    return text[0].lower() + text[1:]
