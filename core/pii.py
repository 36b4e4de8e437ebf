"""Personal data in free-form event metadata: detection and redaction before anything is stored.

Each kind is a small, explicit detector (fides-style masking strategies): emails, phone numbers,
IPv4/IPv6 addresses, payment card numbers (Luhn-checked, so order numbers survive) and IBANs
(mod-97-checked). A match is replaced by ``[redacted-<kind>]`` and counted.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import re
import secrets
from collections import Counter
from collections.abc import Callable

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PHONE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{6,}\d(?!\w)")
# A cheap necessary condition for every kind, checked with bytes.translate (a regex alternation
# costs microseconds per event): an @ (email), a run of 7+ digits, spaces, dots, parentheses or
# dashes (phone, card, IBAN, IPv4), or a colon next to a hex digit or another colon (IPv6).
_DIGIT_RUNS = bytes.maketrans(b"0123456789 .()-", b"#" * 15)
_HEX = bytes.maketrans(b"0123456789abcdefABCDEF", b"h" * 22)


def might_contain_pii(text: str) -> bool:
    """False when ``text`` certainly holds nothing a detector below would redact."""
    data = text.encode("utf-8")
    if b"@" in data or b"#######" in data.translate(_DIGIT_RUNS):
        return True
    hexed = data.translate(_HEX)
    return b"h:h" in hexed or b"::" in data


def _positions(data: bytes, needle: bytes) -> list[int]:
    """Every start of ``needle`` in ``data`` (bytes.find: far faster than a regex scan)."""
    found = []
    at = data.find(needle)
    while at != -1:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def might_contain_pii_each(texts: list[bytes]) -> set[int]:
    """Indices of the ``texts`` for which might_contain_pii may be true, found with one scan of
    the whole batch: the same conditions on the texts joined by newlines (a newline breaks
    every run and pattern), about ten times cheaper than a check per text."""
    blob = b"\n".join(texts)
    hits = _positions(blob, b"@") + _positions(blob, b"::")
    hits += _positions(blob.translate(_DIGIT_RUNS), b"#######") + _positions(blob.translate(_HEX), b"h:h")
    if not hits:
        return set()
    starts = list(itertools.accumulate((len(t) + 1 for t in texts[:-1]), initial=0))
    return {bisect.bisect_right(starts, position) - 1 for position in hits}


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _is_card(match: str) -> bool:
    digits = re.sub(r"[ -]", "", match)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_ip(match: str) -> bool:
    try:
        ipaddress.ip_address(match)
    except ValueError:
        return False
    return True


def _is_phone(match: str) -> bool:
    digits = sum(ch.isdigit() for ch in match)
    if match.isdigit():
        # A bare run of digits is a phone number only at national lengths; longer runs are
        # order or product numbers.
        return 9 <= digits <= 12
    return 9 <= digits <= 15


# Order matters: an IBAN or a card number also looks like a phone number.
DETECTORS: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
    ("email", EMAIL, lambda _m: True),
    ("iban", IBAN, iban_valid),
    ("card", CARD, _is_card),
    ("ip", IPV4, _is_ip),
    ("ip", IPV6, _is_ip),
    ("phone", PHONE, _is_phone),
]


def redact_text(text: str, counts: Counter[str]) -> str:
    """``text`` with every detected piece of personal data replaced; ``counts`` gets the kinds."""
    if not might_contain_pii(text):
        return text
    for kind, pattern, accept in DETECTORS:

        def replace(match: re.Match[str], kind: str = kind, accept: Callable[[str], bool] = accept) -> str:
            if not accept(match.group(0)):
                return match.group(0)
            counts[kind] += 1
            return f"[redacted-{kind}]"

        text = pattern.sub(replace, text)
    return text


def new_pseudonymous_user_id() -> int:
    """A fresh random user id in [2**62, 2**63): above every seeded id, linked to nothing.

    Erasure moves a person's rows to such an id, and an event that arrives later for an erased
    user gets one of its own, so nothing can be joined back to the former id (Recital 26).
    """
    return (1 << 62) | secrets.randbits(62)
