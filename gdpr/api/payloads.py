"""What a client sends, checked before anything is stored or mailed: bodies, ids and secrets.

Bodies are decoded by msgspec into fixed shapes (unknown fields refused, every value of the type
it must have), so no nesting, size or type a client invents reaches the domain code. The address
is checked by ``gdpr.email_address`` (internationalised addresses are mailboxes; a look-alike is
its own mailbox, and the mailed code proves who holds it); corrections by ``gdpr.rights``, as
the processor will apply them. Messages name what is wrong, never the value sent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from core.web import Problem
from gdpr.api import tokens
from gdpr.email_address import InvalidEmail, normalise
from gdpr.requests import REQUEST_TYPES
from gdpr.rights import InvalidCorrections, parse_corrections

# Request ids are BIGSERIAL: at most 18 digits here, so a number PostgreSQL cannot hold never
# reaches it (and a leading zero, a sign or a space is no id).
ID_PATTERN = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)
# msgspec's messages name the field and the problem; a path through an unknown key is cut short.
MAX_REASON = 200

T = TypeVar("T")


def not_found() -> Problem:
    """The one answer for an unknown request id and for a wrong secret alike: whoever guesses ids
    learns nothing about which exist."""
    return Problem(404, "not_found", "no request with this id and secret: check both")


class _NewRequestBody(msgspec.Struct, forbid_unknown_fields=True):
    email: str
    type: str
    corrections: dict[str, str] | None = None


class _VerifyBody(msgspec.Struct, forbid_unknown_fields=True):
    code: str


_NEW_REQUEST = msgspec.json.Decoder(_NewRequestBody)
_VERIFY = msgspec.json.Decoder(_VerifyBody)


@dataclass(frozen=True)
class NewRequest:
    """A request as filed: where to mail the code, the match key stored for the processor."""

    address: str  # as given (trimmed, Unicode NFC): the code goes there
    email: str  # the match key (gdpr.email_address.normalise)
    request_type: str
    corrections: dict[str, str] | None = None


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, shape: str) -> T:
    if not body.strip():
        raise Problem(400, "empty_body", f"the body is empty: send a JSON object {shape}")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as e:
        raise Problem(400, "invalid_body", f"{_reason(e)}; send a JSON object {shape}") from e
    except (msgspec.DecodeError, UnicodeDecodeError) as e:
        raise Problem(400, "malformed_json", f"the body is not valid JSON ({_reason(e)}); send a JSON object {shape}") from e
    except RecursionError as e:
        raise Problem(400, "malformed_json", f"the body is nested too deeply; send a JSON object {shape}") from e


def _reason(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    text = text[0].lower() + text[1:]
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "..."


def parse_new_request(body: bytes) -> NewRequest:
    """A new request from its JSON body ``{"email", "type", "corrections"?}``; Problem (400) for
    anything else."""
    shape = '{"email": ..., "type": ...} (and "corrections" for a rectification)'
    parsed = _decode(_NEW_REQUEST, body, shape)
    if parsed.type not in REQUEST_TYPES:
        raise Problem(400, "invalid_type", f"type must be one of {', '.join(REQUEST_TYPES)}")
    try:
        email = normalise(parsed.email)
    except InvalidEmail as e:
        raise Problem(400, "invalid_email", f"{e}: give the address the code can be mailed to") from e
    address = unicodedata.normalize("NFC", parsed.email.strip())
    corrections = None
    if parsed.type == "rectification":
        if parsed.corrections is None:
            raise Problem(
                400, "invalid_corrections", "a rectification names what to correct: corrections {email, full_name, address}"
            )
        try:
            corrections = parse_corrections(parsed.corrections)
        except InvalidCorrections as e:
            raise Problem(400, "invalid_corrections", str(e)) from e
    elif parsed.corrections is not None:
        raise Problem(400, "invalid_corrections", "only a rectification carries corrections")
    return NewRequest(address, email, parsed.type, corrections)


def parse_code(body: bytes) -> str:
    """The code of a verification body ``{"code": "12345678"}`` (spaces and hyphens allowed, as
    people copy it); Problem (400) for anything that cannot be a code. A malformed code is not a
    try: it could never have matched."""
    parsed = _decode(_VERIFY, body, '{"code": "<the 8 digits of the mail>"}')
    code = re.sub(r"[\s-]", "", parsed.code)
    if not tokens.CODE_PATTERN.fullmatch(code):
        raise Problem(400, "malformed_code", f"the code is the {tokens.CODE_DIGITS} digits of the mail")
    return code


def parse_id(text: str) -> int:
    """A request id from the path; the same 404 as an unknown id for anything else (no query)."""
    if not ID_PATTERN.fullmatch(text):
        raise not_found()
    return int(text)


def bearer_secret(authorization: str | None) -> str:
    """The secret of an ``Authorization: Bearer <secret>`` header: 401 when there is none, the
    404 of an unknown request when it cannot be a secret (nothing is looked up for it)."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Problem(
            401, "missing_secret", "send the request's secret, as given when it was filed, as 'Authorization: Bearer <secret>'"
        )
    secret = secret.strip()
    if not tokens.SECRET_PATTERN.fullmatch(secret):
        raise not_found()
    return secret
