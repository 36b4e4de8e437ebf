"""Personal data in free-form data: detection and redaction before anything is stored, and the
removal of a known person's values at erasure. The one redactor for every place data is stored.

Each kind is a small, explicit detector (fides-style masking strategies): emails (also written
with "(at)" and "dot"), IBANs (checked by python-stdnum), payment card numbers (Luhn-checked, so
order numbers survive), IPv4/IPv6 addresses and phone numbers (checked by phonenumbers, Google's
libphonenumber metadata). Text is normalised first (URL-decoded, NFKC: full-width digits and @
become ASCII). A match is replaced by ``[redacted-<kind>]`` and counted. Structured data is
redacted value by value, so what is stored stays valid JSON, and by key name as well: a value
under a name, address, email or phone key (in several languages) becomes ``[redacted]``
whatever it looks like. A cheap byte-level prefilter keeps the detectors off the hot path.

The work per event is bounded: ``metadata_refusal`` names metadata larger than the settings'
bounds (values, string length, total size), which the collector answers with 413 and the
consumers dead-letter, and the library checks per event are capped (PHONE_CHECKS_PER_EVENT).
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import os
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any, NamedTuple
from urllib.parse import unquote

import msgspec
import phonenumbers
from stdnum import iban as stdnum_iban

from core.config import MetadataLimits
from core.events import DEAD_LETTER_PAYLOAD_CHARS, MAX_PAYLOAD_BYTES

# -- Email: one definition, used to validate a requester's address and to find addresses in text.

# RFC 5322 "atext": what an unquoted local part may hold.
_LOCAL_ATEXT = "!#$%&'*+/=?^_`{|}~.-"
# Inside free text, quotes and braces delimit an address far more often than they belong to it.
_LOCAL_IN_TEXT = "".join(ch for ch in _LOCAL_ATEXT if ch not in "'`{|}")
# Look-alikes of @ (fullwidth, small form) that people and obfuscators type instead.
AT_SIGNS = "@\uff20\ufe6b"
# The lengths are RFC 5321's (64 for a local part, 63 for a label) and keep a search linear: an
# unbounded local part makes a long run of word characters with no @ after it cost O(n^2).
EMAIL_ADDRESS = re.compile(rf"[a-zA-Z0-9{re.escape(_LOCAL_ATEXT)}]{{1,64}}@[a-zA-Z0-9-]{{1,63}}(?:\.[a-zA-Z0-9-]{{1,63}})+")
"""A plain ASCII address, for ``fullmatch``: what a privacy request may name."""
EMAIL = re.compile(rf"[\w{re.escape(_LOCAL_IN_TEXT)}]{{1,64}}[{AT_SIGNS}][\w-]{{1,63}}(?:\.[\w-]{{1,63}})+")
"""An address inside text, for ``search``: the same shape, any script, any @ look-alike."""

# -- The other detectors' candidates; each is confirmed by a check below before it is redacted.

# An address written to dodge a scraper: "jane (at) example (dot) com", "jane [at] example.com",
# "jane at example dot com" (a bare "at" only with a spelled "dot", or "see you at home.com" would
# be one). The lengths are EMAIL's, so a search stays linear.
_SPELLED_AT = r"\s*[(\[{<]\s*at\s*[)\]}>]\s*"
_SPELLED_DOT = r"(?:\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+)"
EMAIL_SPELLED = re.compile(
    rf"[\w.+-]{{1,64}}(?:{_SPELLED_AT}[\w-]{{1,63}}(?:(?:\.|{_SPELLED_DOT})[\w-]{{1,63}})+"
    rf"|\s+at\s+[\w-]{{1,63}}(?:{_SPELLED_DOT}[\w-]{{1,63}})+)",
    re.IGNORECASE,
)
# Groups of four may be joined by spaces or dashes (IBAN, card) or dots (card), as people type them.
IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30}\b")
CARD = re.compile(r"\b\d(?:[ .-]?\d){12,18}\b")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# A phone number is written internationally (+49 ..., 0049 ...) or nationally with its leading 0
# (030/12345678, (030) 1234567, 06 12 34 56 78). A bare digit run is not a candidate: it is an
# order or product number, a timestamp or a JSON integer (which cannot start with 0) far more
# often than a phone number written without its prefix.
PHONE = re.compile(r"(?<![\w+./-])(?:\+|\(?0)[\d ()./-]{6,28}\d(?![\w/])")
# A national number written without its leading 0 ("30 1234567", "6 12 34 56 78", "151 2345 6789")
# is a candidate when its digits are grouped by spaces, dots, dashes or slashes, as people write
# phone numbers; a bare run stays an order number or a JSON integer (see above).
PHONE_NATIONAL = re.compile(r"(?<![\w+./:-])[1-9]\d{0,4}(?:[ ./-]\d{1,8}){1,5}(?![\w/:.-])")
# A decimal written with thousands separators (1.234.567.890) is an amount, not a phone number.
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+\Z")
# The countries the shop sells to; a national number must be valid in one of those where a
# national number starts with 0 (trunk prefix 0, or Italy, where the 0 belongs to the number).
PHONE_REGIONS = ("DE", "FR", "IT", "NL", "BE", "AT", "SE", "IE", "FI", "GB", "CH")
_DATE_PREFIX = re.compile(r"\(?(?:\d{1,2}([./-])\d{1,2}\1(?:19|20)\d\d|(?:19|20)\d\d([./-])\d{1,2}\2\d{1,2})(?!\d)")
# An event built to be expensive (thousands of phone-like values) falls back to counting digits
# after this many library checks (about 20 us each): over-redaction, never seconds of CPU on one
# event. A form with a few phone numbers needs a handful; a miss in one region is one check.
# 16, not 24: an attacker's phone numbers are all new to the cache, and 24 checks alone cost
# about 480 us, 13x a checkout form's whole event (bench.redaction with the cache cleared).
PHONE_CHECKS_PER_EVENT = 16
# And after this many candidates of any detector (a form has a few; each costs microseconds),
# every further string of the event that the prefilter suspects becomes ``[redacted]`` whole,
# counted as UNCHECKED_KIND: the work per event is bounded whatever its strings hold. 32, not 48:
# at 48 the worst event within the bounds measured 15-21x a checkout form's on a loaded host,
# too near the 20x target; a checked candidate costs about 3 us more than one redacted whole.
CANDIDATES_PER_EVENT = 32
UNCHECKED_KIND = "unchecked"
_PHONE_CACHE_SIZE = 4096
# Card numbers have at most 19 digits; a longer number is not personal data of any kind here.
_DIGITS_IN_LONGEST = 19
_LONGEST_NUMBER = 10**_DIGITS_IN_LONGEST

# -- The prefilter: a cheap necessary condition for every detector, checked with bytes.find and
# bytes.translate (a regex alternation costs microseconds per event): an @, a look-alike or %40
# (email), "at)" or "at]" or " dot " (a spelled email), a run of 7+ digits, spaces, dots,
# parentheses, dashes or slashes (phone, card, IBAN, IPv4), a full-width digit, or a colon next to
# a hex digit or another colon (IPv6); and a marker of an earlier redaction (counted again where
# the data is stored). Every check below insists on what this looks for:
# tests/unit/core/test_pii.py runs every detector's positives through it.
_AT_LOOK_ALIKES = tuple(ch.encode("utf-8") for ch in AT_SIGNS[1:])
# Both look-alikes start with this byte: one memchr-fast find of a single byte costs a fiftieth
# of a find of their three bytes, and the byte is rare in metadata.
_LOOK_ALIKE_LEAD = b"\xef"
# Full-width digits (U+FF10-FF19) and @ (U+FF20) are EF BC 90-A0 in UTF-8.
_FULL_WIDTH = frozenset(range(0x90, 0xA1))
# A find of one byte is a memchr (a hundredth of a nanosecond a byte); a find of several bytes
# costs about a nanosecond a byte. So each longer needle is looked for only when its first byte,
# rare in metadata, is there at all; a closing bracket is checked for its "at" apart.
_GATED_NEEDLES = ((b"%", (b"%40",)), (b"[", (b"[redacted",)), (b" ", (b" dot ", b" DOT ")))
_CLOSING = (b")", b"]")
_DIGIT_RUNS = bytes.maketrans(b"0123456789 .()-/", b"#" * 16)
_DIGIT_RUN = b"#######"
_HEX = bytes.maketrans(b"0123456789abcdefABCDEF", b"h" * 22)
_DIGITS_7 = re.compile(r"[\d .()/-]{7}")


# The same conditions for one string, as one regex: for a short string a search costs less than
# the batch scan's encode, translates and finds.
_SUSPECT = re.compile(
    r"[@\uff20\ufe6b\uff10-\uff19]|::|%40|\[redacted|at[)\]]| dot |[\d .()/-]{7}|[0-9a-fA-F]:[0-9a-fA-F]", re.IGNORECASE
)


def might_contain_pii(text: str) -> bool:
    """False when ``text`` certainly holds nothing a detector below would redact."""
    return _SUSPECT.search(text) is not None


def _positions(data: bytes, needle: bytes) -> list[int]:
    """Every start of ``needle`` in ``data`` (bytes.find: far faster than a regex scan)."""
    found = []
    at = data.find(needle)
    while at != -1:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def _full_width_or_at(three: bytes) -> bool:
    return three in _AT_LOOK_ALIKES or (len(three) == 3 and three[1] == 0xBC and three[2] in _FULL_WIDTH)


def _hits(blob: bytes, *, colons_are_keys: bool = False) -> list[int]:
    """Positions in ``blob`` where the prefilter's conditions hold (see above). With
    ``colons_are_keys`` (the caller knows every colon of the blob separates a key from its value,
    so none is in a string) the IPv6 conditions, a colon next to a colon or a hex digit, cannot
    hold and are not looked for."""
    hits = _positions(blob, b"@")
    for lead, needles in _GATED_NEEDLES:
        if lead in blob:
            hits += [at for needle in needles for at in _positions(blob, needle)]
    hits += [at for closing in _CLOSING for at in _positions(blob, closing) if blob[at - 2 : at].lower() == b"at"]
    hits += [at for at in _positions(blob, _LOOK_ALIKE_LEAD) if _full_width_or_at(blob[at : at + 3])]
    hits += _positions(blob.translate(_DIGIT_RUNS), _DIGIT_RUN)
    if not colons_are_keys:
        hits += _positions(blob, b"::") + _positions(blob.translate(_HEX), b"h:h")
    return hits


def _texts_at(texts: Sequence[bytes], positions: list[int]) -> set[int]:
    """Indices of the ``texts``, joined by newlines, that hold these positions of the blob."""
    if not positions:
        return set()
    starts = list(itertools.accumulate((len(t) + 1 for t in texts[:-1]), initial=0))
    return {bisect.bisect_right(starts, position) - 1 for position in positions}


def might_contain_pii_each(texts: list[bytes]) -> set[int]:
    """Indices of the ``texts`` (UTF-8) that may hold personal data, found with one scan of the
    whole batch: the conditions above on the texts joined by newlines (a newline breaks every
    run and pattern), about ten times cheaper than a check per text."""
    return _texts_at(texts, _hits(b"\n".join(texts)))


# -- Checks: a candidate is personal data only when its check says so.


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2 == 1:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """An IBAN in any case, with or without spaces: its country's length and format and the
    mod-97 check digits (python-stdnum). The national check digits some countries add are not
    checked: an example or mistyped account number is still somebody's bank details."""
    return bool(stdnum_iban.is_valid(text, check_country=False))


class _Checks:
    """Library checks and candidates left for one event (PHONE_CHECKS_PER_EVENT, CANDIDATES_PER_EVENT)."""

    __slots__ = ("candidates", "left")

    def __init__(self) -> None:
        self.left = PHONE_CHECKS_PER_EVENT
        self.candidates = CANDIDATES_PER_EVENT


class _OutOfCandidates(Exception):
    """The event's candidates are spent: the string at hand is redacted whole."""


_phone_cache: dict[str, bool] = {}


def _phone_number(text: str, checks: _Checks) -> bool | None:
    """Whether phonenumbers accepts a candidate: with a +, any plausible length for its country
    (the + says it is a phone number); with 00, a valid international number; otherwise, with or
    without its leading 0, a valid national number of one of PHONE_REGIONS (a 0044... or 06...
    digit group is as often part of a longer number or a date). None when the event's checks ran
    out before an answer (see PHONE_CHECKS_PER_EVENT)."""
    digits = re.sub(r"\D", "", text)
    checks.left -= 1
    try:
        if text.startswith("+"):
            return bool(phonenumbers.is_possible_number(phonenumbers.parse("+" + digits)))
        if digits.startswith("00"):
            return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + digits[2:])))
    except phonenumbers.NumberParseException:
        return False
    for region in PHONE_REGIONS:
        if checks.left < 0:
            return None
        checks.left -= 1
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(digits, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def _is_phone(text: str, checks: _Checks) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    if not 9 <= digits <= 15 or _DATE_PREFIX.match(text) or _THOUSANDS.match(text):
        return False
    key = ("+" if text.startswith("+") else "") + re.sub(r"\D", "", text)
    known = _phone_cache.get(key)
    if known is not None:
        return known
    if checks.left <= 0:
        return True  # out of checks: the digit count alone decides, erring on privacy's side
    result = _phone_number(key, checks)
    if result is None:
        return True  # as above
    if len(_phone_cache) >= _PHONE_CACHE_SIZE:
        _phone_cache.clear()
    _phone_cache[key] = result
    return result


def _prefixes_at_spaces(candidate: str) -> list[int]:
    """Lengths of ``candidate`` and of each prefix that ends before a space, longest first: a
    candidate may run on into the next word or number (``DE89 ... 00 BE68 ...``)."""
    return [len(candidate)] + [i for i in range(len(candidate) - 1, 0, -1) if candidate[i] == " " and candidate[i - 1] != " "]


def _phone_length(candidate: str, checks: _Checks) -> int:
    for end in _prefixes_at_spaces(candidate):
        part = candidate[:end].rstrip(" ./-(")
        if part and part[-1].isdigit() and _is_phone(part, checks):
            return len(part)
    return 0


# A national significant number of PHONE_REGIONS has at most 11 digits (Germany's longest).
_NATIONAL_DIGITS = 11


def _national_length(candidate: str, checks: _Checks) -> int:
    """A phone number without its leading 0: as _phone_length, with at most 11 digits (a longer
    group is part of an account or reference number, not a phone number)."""
    for end in _prefixes_at_spaces(candidate):
        part = candidate[:end].rstrip(" ./-(")
        if part and part[-1].isdigit() and sum(ch.isdigit() for ch in part) <= _NATIONAL_DIGITS and _is_phone(part, checks):
            return len(part)
    return 0


def _iban_length(candidate: str, _checks: _Checks) -> int:
    for end in _prefixes_at_spaces(candidate):
        # The prefilter finds an IBAN by its run of digits; the account part of every EU format
        # has one, and an IBAN without one is not reported rather than missed by the prefilter.
        if _DIGITS_7.search(candidate[:end]) and iban_valid(candidate[:end]):
            return end
    return 0


def _card_length(candidate: str, _checks: _Checks) -> int:
    digits = re.sub(r"[ .-]", "", candidate)
    return len(candidate) if 13 <= len(digits) <= 19 and luhn_valid(digits) else 0


def _ip_length(candidate: str, _checks: _Checks) -> int:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return 0
    return len(candidate)


def _whole(candidate: str, _checks: _Checks) -> int:
    return len(candidate)


@dataclass(frozen=True)
class Detector:
    """One kind of personal data: where a candidate may be, and how much of it is that kind."""

    kind: str
    pattern: re.Pattern[str]
    # The length of the leading part of a candidate that is personal data; 0 when none is.
    accept: Callable[[str, _Checks], int]
    # A necessary condition, far cheaper than the pattern's search: a text without it is skipped.
    needs: Callable[[str, int], bool]

    @property
    def marker(self) -> str:
        return f"[redacted-{self.kind}]"


# Order matters: an IBAN or a card number also looks like a phone number.
_SPELLED_HINT = re.compile(r"at\s*[)\]}>]| at ", re.IGNORECASE)
DETECTORS = (
    Detector("email", EMAIL, _whole, lambda text, _digits: "@" in text or "\uff20" in text or "\ufe6b" in text),
    Detector("email", EMAIL_SPELLED, _whole, lambda text, _digits: _SPELLED_HINT.search(text) is not None),
    Detector("iban", IBAN, _iban_length, lambda _text, digits: digits >= 7),
    Detector("card", CARD, _card_length, lambda _text, digits: digits >= 13),
    Detector("ip", IPV4, _ip_length, lambda text, digits: digits >= 4 and "." in text),
    Detector("ip", IPV6, _ip_length, lambda text, _digits: ":" in text),
    Detector("phone", PHONE, _phone_length, lambda _text, digits: digits >= 9),
    Detector("phone", PHONE_NATIONAL, _national_length, lambda _text, digits: digits >= 9),
)
_NOT_DIGITS = re.compile(r"\D+")


def _redact_kind(text: str, detector: Detector, counts: Counter[str], checks: _Checks) -> str:
    pieces: list[str] = []
    kept_from = search_from = 0
    while match := detector.pattern.search(text, search_from):
        checks.candidates -= 1
        if checks.candidates < 0:
            raise _OutOfCandidates
        length = detector.accept(match.group(0), checks)
        if length:
            pieces += (text[kept_from : match.start()], detector.marker)
            counts[detector.kind] += 1
            kept_from = search_from = match.start() + length
        else:
            search_from = match.start() + 1
    return "".join(pieces) + text[kept_from:] if pieces else text


# -- Normalisation: what a detector sees.

# A percent escape: text that holds one is also read URL-decoded ("jane%40example.com").
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_MARKER = re.compile(r"\[redacted(?:-(\w+))?\]")
KEY_MARKER = "[redacted]"
# The kind counted for a value redacted because of its key.
KEY_KIND = "key"


def normalised(text: str) -> str:
    """``text`` as the detectors read it: URL-decoded when it holds a percent escape, and in NFKC
    when it is not ASCII (full-width digits and @, ligatures, compatibility forms)."""
    if "%" in text and _PERCENT_ESCAPE.search(text):
        text = unquote(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text


def redact_text(text: str, counts: Counter[str], checks: _Checks | None = None) -> str:
    """``text`` with every detected piece of personal data replaced; ``counts`` gets the kinds.

    The detectors read the normalised text; when they find something, the result is the
    normalised text with the finds replaced (an encoded address must not survive in its encoded
    form), else ``text`` as it was. Markers of an earlier redaction (the collector's, read again
    by a consumer) are counted again, so what is stored says what was removed from it.
    """
    plain = normalised(text)
    if not might_contain_pii(plain):
        return text
    for marker in _MARKER.finditer(plain):
        counts[marker.group(1) or KEY_KIND] += 1
    checks = _Checks() if checks is None else checks
    if checks.candidates < 0:
        counts[UNCHECKED_KIND] += 1
        return KEY_MARKER
    redacted = plain
    digits = len(plain) - len("".join(_NOT_DIGITS.findall(plain)))
    found: Counter[str] = Counter()
    try:
        for detector in DETECTORS:
            # A find of an earlier detector only takes digits away: the count stays a bound.
            if detector.needs(redacted, digits):
                redacted = _redact_kind(redacted, detector, found, checks)
    except _OutOfCandidates:
        counts[UNCHECKED_KIND] += 1
        return KEY_MARKER
    counts.update(found)
    return text if redacted == plain else redacted


def _number_text(value: int | float | Decimal) -> str | None:
    """The digits of a whole number of at most 19 digits, the longest personal data kind (a card
    number); None for anything else: no kind has a fraction, an exponent or more digits."""
    if isinstance(value, int):
        return str(value) if abs(value) < _LONGEST_NUMBER else None
    if isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() >= _DIGITS_IN_LONGEST or value != value.to_integral_value():
            return None
        return str(int(value))
    return str(int(value)) if value.is_integer() and abs(value) < _LONGEST_NUMBER else None


def _redact_number(
    value: int | float | Decimal, counts: Counter[str], checks: _Checks | None = None
) -> int | float | Decimal | str:
    """A number that is personal data as a whole (a card number sent as a JSON integer) becomes
    its marker, a string; any other number stays the number it was. The rule is redact_text's:
    a bare digit run is never a phone number (see PHONE and PHONE_NATIONAL)."""
    text = _number_text(value)
    if text is None or not might_contain_pii(text):
        return value
    found: Counter[str] = Counter()
    redacted = redact_text(text, found, checks)
    if len(found) == 1 and redacted == f"[redacted-{next(iter(found))}]":
        counts.update(found)
        return redacted
    return value


# -- Keys: a value under a name, address, email or phone key is personal data whatever it holds.

# Words that make a key personal whatever else it says ("shipping_address", "E-Mail", "prénom"):
# English and the shop's other languages (German, French, Spanish, Italian, Dutch, Portuguese).
# Keys are compared as lower-case ASCII words (accents dropped, camelCase and separators split);
# a compound in one word ("fullname", "nachname") is listed as one.
PII_KEY_WORDS = frozenset(
    {
        # email
        "email", "emailaddress", "mail", "mailaddress", "correo", "courriel",
        # phone
        "phone", "phonenumber", "telephone", "tel", "telefon", "telefono", "telefone", "telefoonnummer",
        "telefonnummer", "mobilephone", "mobilenumber", "cellphone", "handynummer",
        # address
        "address", "adresse", "adres", "direccion", "indirizzo", "endereco", "anschrift", "morada",
        "street", "streetaddress", "strasse", "calle", "straat", "postcode", "postalcode", "zip",
        "zipcode", "plz", "codepostal", "codigopostal", "cap",
        # names
        "fullname", "firstname", "lastname", "surname", "givenname", "familyname", "middlename",
        "maidenname", "username", "nickname", "vorname", "nachname", "familienname", "prenom",
        "cognome", "apellido", "apellidos", "sobrenome", "voornaam", "achternaam",
        # other identifiers
        "ip", "ipaddress", "iban", "cardnumber", "ccnumber", "creditcard", "dateofbirth",
        "birthdate", "birthday", "dob", "geburtsdatum", "ssn", "passport",
    }
)  # fmt: skip
# A name by itself ("name", "nombre", "nom"): personal alone, at the top of the metadata or
# under a person's key, or beside a person word ("customer_name"); not "product_name", or
# {"items": [{"name": "Shoe"}]}.
NAME_WORDS = frozenset({"name", "names", "nombre", "nom", "nome", "naam", "navn", "namn"})
# Parts of a name or an address: personal beside or under a person word ("billing.first",
# {"shipping": {"city": ...}}), not alone ("first": true, "city" of a store).
PART_WORDS = frozenset(
    {"first", "last", "given", "family", "middle", "city", "town", "ort", "ville", "ciudad", "citta", "stadt", "line1", "line2",
     "house", "housenumber", "hausnummer", "mobile", "cell"}
)  # fmt: skip
PERSON_WORDS = frozenset(
    {
        "customer", "user", "client", "cliente", "kunde", "kunden", "buyer", "recipient", "contact", "holder",
        "cardholder", "account", "shipping", "billing", "delivery", "invoice", "sender", "receiver", "owner",
        "member", "person", "guest", "passenger", "patient", "display", "real", "legal", "full", "destinataire",
        "titular", "usuario", "utente", "persona", "home", "personal", "private", "my",
    }
)  # fmt: skip
# Where a key is: at the top of the metadata, under a person's key, or under any other.
_TOP, _PERSON, _OTHER = 0, 1, 2
_KEY_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def _key_words(key: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", key.translate(_ASCII_LETTERS)).encode("ascii", "ignore").decode("ascii")
    return _KEY_WORD.findall(_CAMEL.sub(r"\1 \2", folded).lower())


# Metadata repeats a few keys: each (key, place) is judged once; the bound keeps a stream of
# distinct keys from growing it.
@lru_cache(maxsize=4096)
def _judge_key(key: str, place: int) -> tuple[bool, int]:
    """Whether a value under ``key`` at ``place`` is personal, and the place of keys under it."""
    words = _key_words(key)
    found = set(words)
    person = bool(found & PERSON_WORDS) or place == _PERSON
    personal = (
        "".join(words) in PII_KEY_WORDS
        or bool(found & PII_KEY_WORDS)
        or (bool(found & NAME_WORDS) and (person or bool(found & PART_WORDS) or (len(found) == 1 and place == _TOP)))
        or (bool(found & PART_WORDS) and person)
    )
    return personal, _PERSON if person else _OTHER


def is_pii_key(key: str) -> bool:
    """Whether a value under this key, at the top of an event's metadata, is personal data
    whatever it looks like ("E-Mail", "full_name", "shipping_address", "Vorname", "nombre")."""
    return _judge_key(key, _TOP)[0]


class _Redaction:
    """One event's redaction: its counts, and the library checks it may still spend."""

    __slots__ = ("checks", "counts")

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.checks = _Checks()

    def text(self, text: str) -> str:
        return redact_text(text, self.counts, self.checks)

    def walk(self, value: Any, place: int = _TOP, personal: bool = False) -> Any:  # noqa: PLR0911 - one return per JSON type
        """A copy of JSON-like data: strings (keys too) through the detectors, numbers that are
        personal data as a whole replaced; strings and numbers under a personal key (at any
        depth below it) become KEY_MARKER. Booleans and null stay: they say nothing of anybody."""
        if isinstance(value, str):
            if personal:
                if _MARKER.fullmatch(value) is None:
                    self.counts[KEY_KIND] += 1
                    return KEY_MARKER
                return self.text(value)  # already redacted: counted again, kept
            return self.text(value)
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                inner_personal, inner_place = _judge_key(key, place) if isinstance(key, str) else (False, _OTHER)
                new_key = self.text(key) if isinstance(key, str) else key
                if new_key in out:  # two keys redacted alike: keep both values
                    new_key = next(f"{new_key} ({n})" for n in itertools.count(2) if f"{new_key} ({n})" not in out)
                out[new_key] = self.walk(item, inner_place, personal or inner_personal)
            return out
        if isinstance(value, list | tuple):
            return [self.walk(item, place, personal) for item in value]
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            if personal:
                self.counts[KEY_KIND] += 1
                return KEY_MARKER
            return _redact_number(value, self.counts, self.checks)
        return value


def _walk(value: Any, on_text: Callable[[str], str], on_number: Callable[[Any], Any]) -> Any:
    """A copy of JSON-like data with every string (keys too) through ``on_text`` and every number
    through ``on_number`` (erasure's walk: no key rule, no detectors)."""
    if isinstance(value, str):
        return on_text(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = on_text(key) if isinstance(key, str) else key
            if new_key in out:  # two keys redacted alike: keep both values
                new_key = next(f"{new_key} ({n})" for n in itertools.count(2) if f"{new_key} ({n})" not in out)
            out[new_key] = _walk(item, on_text, on_number)
        return out
    if isinstance(value, list | tuple):
        return [_walk(item, on_text, on_number) for item in value]
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return on_number(value)
    return value


def redact_metadata(metadata: dict[str, Any], counts: Counter[str]) -> dict[str, Any]:
    """A redacted copy of event metadata (the input is not changed), value by value: strings
    through the detectors, a number that is personal data as a whole replaced by its marker
    string, keys redacted like strings, and values under personal keys (is_pii_key, and parts of
    a name or an address under a person's key) replaced by ``[redacted]``. The result is always
    JSON-serialisable, so what is stored stays valid JSON; ``counts`` gets the kinds. Call
    metadata_refusal first: the bounds are what keeps this cheap."""
    result: dict[str, Any] = _Redaction(counts).walk(metadata)
    return result


METADATA_ENCODER = msgspec.json.Encoder(decimal_format="number")
"""Metadata as stored: decimals stay JSON numbers, as they arrived."""


def redact_serialised(
    metadatas: Sequence[dict[str, Any]], counts: Counter[str], serialised: list[bytes] | None = None
) -> tuple[list[bytes], list[int]]:
    """Each metadata object serialised (METADATA_ENCODER; or ``serialised``, the caller's), redacted
    where it needs to be, and the indices of those redacted.

    The few that need the walk are found for the whole batch at once, the events without personal
    data (nearly all) at a cost of a few scans of the batch's bytes in C: the prefilter
    (might_contain_pii_each's conditions) on the texts joined; a look at the batch's distinct
    top-level keys (set union, each key judged once and cached), the events holding a personal
    one walked; and nesting, whose inner keys only the walk judges. When the batch has as many
    colons as top-level keys, every colon separates such a key from its value: no object is
    nested (an empty one holds nothing) and no string holds a colon, so the IPv6 conditions are
    not looked for either. Otherwise every text with a second "{" is walked, and any with a "[".
    """
    encode = METADATA_ENCODER.encode
    if serialised is None:
        serialised = list(map(encode, metadatas))
    blob = b"\n".join(serialised)
    colons_are_keys = blob.count(b":") == sum(map(len, metadatas))
    hits = _hits(blob, colons_are_keys=colons_are_keys)
    hits += _positions(blob, b"[")
    suspects = _texts_at(serialised, hits)
    if not colons_are_keys and blob.count(b"{") > len(serialised):
        suspects.update(i for i, text in enumerate(serialised) if text.count(b"{") > 1)
    personal = {key for key in set().union(*metadatas) if isinstance(key, str) and _judge_key(key, _TOP)[0]}
    if personal:
        suspects.update(i for i, metadata in enumerate(metadatas) if not personal.isdisjoint(metadata))
    for i in suspects:
        serialised[i] = encode(redact_metadata(metadatas[i], counts))
    return serialised, sorted(suspects)


# -- Bounds: what one event may ask of the redactor.


def metadata_always_fits(limits: MetadataLimits) -> int:
    """The size as JSON (METADATA_ENCODER's) up to which no metadata is over a bound of ``limits``:
    no string is longer than the text, and every key and value counted takes at least two bytes
    with its separator (``{"":1}``: 6 bytes, 2 values). A caller holding the serialised metadata
    calls metadata_refusal only for a longer one."""
    return min(limits.max_string_chars, limits.max_bytes, 2 * limits.max_values + 1)


def metadata_refusal(metadata: dict[str, Any], limits: MetadataLimits, payload: bytes | None = None) -> str | None:
    """Why ``metadata`` is too large to redact at a bounded cost (more values, a longer string or
    more bytes than ``limits`` allow), or None. ``payload``, the whole event as JSON, lets an
    event that cannot break a bound (nearly every one) skip the walk: no longer than a string
    may be, and with fewer colons and commas (one per key and per value after the first of a
    list, at least) than values are allowed."""
    # Both consumers ask this of every event: one translate counts the colons and commas (two
    # bytes.count cost a fifth more), and no min() call.
    if (
        payload is not None
        and len(payload) <= limits.max_string_chars
        and len(payload) <= limits.max_bytes
        and len(payload) - len(payload.translate(None, b":,")) < limits.max_values
    ):
        return None
    values = 0
    longest = 0
    pending: list[Any] = [metadata]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
            continue
        if isinstance(value, list):
            pending.extend(value)
            continue
        values += 1
        if isinstance(value, str):
            longest = max(longest, len(value))
    if values > limits.max_values:
        return f"metadata holds {values} keys and values; at most {limits.max_values} are accepted"
    if longest > limits.max_string_chars:
        return f"metadata holds a string of {longest} characters; at most {limits.max_string_chars} are accepted"
    size = len(METADATA_ENCODER.encode(metadata))
    if size > limits.max_bytes:
        return f"metadata is {size} bytes as JSON; at most {limits.max_bytes} are accepted"
    return None


# -- Dead letters: a rejected message, stored for diagnosis without the personal data in it.

# Text redaction (of a message that is not JSON, or is larger than MAX_PAYLOAD_BYTES and was
# rejected as oversized) reads this far past the cut, so a value across it is recognised whole.
_CUT_MARGIN = 256
# A larger message is redacted as text from its head only (what is kept of it), not walked as
# JSON whole: a dead letter costs the redactor at most what a message of this size does.
_JSON_WALK_BYTES = 16 * 1024
_PII_KEY_VALUE = re.compile(
    r"""(?P<key>(?P<q>["'])(?P<name>[\w -]{1,40})(?P=q)\s*:\s*)(?P<value>"(?:[^"\\]|\\.)*(?:"|$)|'[^']*(?:'|$)|[^,}\]\s]+)"""
)
_PAYLOAD_ENCODER = msgspec.json.Encoder(decimal_format="number")
_PAYLOAD_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def _redact_key_values(text: str) -> str:
    """Values under PII keys in JSON-like text that is not JSON (cut, or broken)."""

    def replace(match: re.Match[str]) -> str:
        return match.group("key") + '"[redacted]"' if is_pii_key(match.group("name")) else match.group(0)

    return _PII_KEY_VALUE.sub(replace, text)


def redact_payload(payload: bytes | None, counts: Counter[str] | None = None) -> str:
    """A printable copy of a rejected message with personal data removed, cut after
    DEAD_LETTER_PAYLOAD_CHARS characters with a ``... [N more bytes]`` note.

    JSON is redacted value by value (like redact_metadata) and values under PII keys (email,
    name, address, phone, iban, ...) become ``[redacted]``; anything else (not JSON, binary,
    over 16 KiB) goes through the same detectors as text, with the key rule as a pattern.
    Redaction comes before the cut, so an address across the cut cannot survive in part; NUL
    characters, which PostgreSQL text refuses, are written as ``\\x00``.
    """
    if payload is None:
        return ""
    counts = Counter() if counts is None else counts
    text: str | None = None
    if len(payload) <= min(_JSON_WALK_BYTES, MAX_PAYLOAD_BYTES):
        found: Counter[str] = Counter()
        try:
            document = _PAYLOAD_DECODER.decode(payload)
            redacted = _Redaction(found).walk(document)
            text = _PAYLOAD_ENCODER.encode(redacted).decode("utf-8")
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ArithmeticError):
            # Not JSON, a string of invalid UTF-8, nested too deep to walk, or a number Decimal
            # refuses (1e-99999999999999999999): redacted as text.
            pass
        else:
            counts.update(found)
    if text is None:
        head = payload[: DEAD_LETTER_PAYLOAD_CHARS + _CUT_MARGIN].decode("utf-8", errors="replace")
        text = redact_text(_redact_key_values(head), counts)
        left = len(payload) - DEAD_LETTER_PAYLOAD_CHARS - _CUT_MARGIN
        rest = max(left, 0) + len(text[DEAD_LETTER_PAYLOAD_CHARS:].encode("utf-8"))
    else:
        rest = len(text[DEAD_LETTER_PAYLOAD_CHARS:].encode("utf-8"))
    text = text[:DEAD_LETTER_PAYLOAD_CHARS].replace("\x00", "\\x00")
    return f"{text}... [{rest} more bytes]" if rest > 0 else text


# -- Erasure: a known person's own values, wherever they are written in their rows.

ERASED = "[erased]"
# Words too short to find safely on their own: they are still removed inside a longer value.
_MIN_PART = 2
_TOKEN = re.compile(r"[^\W_]+")
# How a person may have written the parts of their email and address in free text.
_AT_VARIANTS = rf"(?:\s*[{AT_SIGNS}]\s*|\s*[(\[{{<]\s*at\s*[)\]}}>]\s*|\s+at\s+)"
_DOT_VARIANTS = r"(?:\.|\s*[(\[{<]\s*dot\s*[)\]}>]\s*|\s+dot\s+)"
_SEPARATOR = r"[\W_]{1,4}"
_TRANSLITERATION = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
# Letters that Unicode does not decompose into an ASCII letter and an accent.
_ASCII_LETTERS = str.maketrans(
    {"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D"}
)


class _Alternative(NamedTuple):
    """One way a value may be written: its parts, written with any separator (or, for an
    email, any spelling of @ and dots between them); the words every match holds (lower case);
    and whether it is a single word (a first name, a street without its number)."""

    parts: tuple[str, ...]
    email_at: int  # 0: words; else parts[:email_at] are an email's local part, the rest its domain
    words: frozenset[str]
    single: bool

    @property
    def regex(self) -> str:
        if not self.email_at:
            return _SEPARATOR.join(map(re.escape, self.parts))
        local = _DOT_VARIANTS.join(map(re.escape, self.parts[: self.email_at]))
        domain = self.parts[self.email_at :]
        return local + _AT_VARIANTS + _DOT_VARIANTS.join(map(re.escape, domain)) if domain else local

    @property
    def length(self) -> int:
        return sum(map(len, self.parts)) + len(self.parts)


@dataclass(frozen=True)
class KnownValues:
    """A person's email, name and address as an erasure looks for them in stored free text:
    whole, in parts, in any case, with any spacing, with @ written as a look-alike or (at),
    and with accents spelled out or dropped.

    ``pattern`` finds them all, whole words only, for the person's own rows; ``whole`` leaves
    out the single words, for rows of anybody, where "Anna" is somebody else more often than
    not. Every match holds all the words of one alternative: a text without them is skipped
    before a pattern (milliseconds to compile) is built, and ``anchors``, the longest word of
    each, let a database preselect rows cheaply.
    """

    # (parts, email_at, single, words) of each alternative, as known_values found them: the
    # alternatives themselves are only built for a person with a row to look at.
    found: frozenset[tuple[tuple[str, ...], int, bool, tuple[str, ...]]]
    anchors: tuple[str, ...]

    @cached_property
    def alternatives(self) -> tuple[_Alternative, ...]:
        """Longest first: a regex takes the first alternative that matches, which should be the
        whole email or address rather than one of its words."""
        built = [_Alternative(parts, at, frozenset(map(str.lower, words)), single) for parts, at, single, words in self.found]
        return tuple(sorted(built, key=lambda a: (-a.length, a.parts)))

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        return _any_of([a.regex for a in self.alternatives])

    @cached_property
    def whole(self) -> re.Pattern[str] | None:
        return _any_of([a.regex for a in self.alternatives if not a.single])

    def could_be_in(self, words: set[str], *, whole: bool = False) -> bool:
        """False when a text with these (lower-case) words certainly holds none of the values."""
        return any(a.words <= words for a in self.alternatives if not (whole and a.single))

    @cached_property
    def sql_words(self) -> tuple[str, ...]:
        """``anchors`` as PostgreSQL's ``lower()`` may leave them in a text: under the C locale
        it folds ASCII letters only, so a word with other letters comes with each case of them
        (up to 16 spellings; beyond, all lower or all upper)."""
        words: set[str] = set()
        for anchor in self.anchors:
            if anchor.isascii():
                words.add(anchor)
                continue
            wide = [i for i, ch in enumerate(anchor) if not ch.isascii() and ch.upper() != ch and len(ch.upper()) == 1]
            choices = (
                itertools.product((False, True), repeat=len(wide))
                if len(wide) <= 4
                else [(False,) * len(wide), (True,) * len(wide)]
            )
            for upper in choices:
                chars = list(anchor)
                for i, up in zip(wide, upper, strict=True):
                    chars[i] = chars[i].upper() if up else chars[i]
                words.add("".join(chars))
        return tuple(sorted(words))

    def sql_regex(self) -> str | None:
        """``anchors`` as a PostgreSQL regular expression for ``~*``: ASCII letters are folded
        by ``~*``; other letters get both cases spelled out, which a database with the C locale
        would not fold (anchors are letters and digits only: nothing to escape)."""
        if not self.anchors:
            return None
        return "|".join(anchor if anchor.isascii() else "".join(map(_both_cases, anchor)) for anchor in self.anchors)


# How PostgreSQL splits a lower()-ed text into words to compare with ``KnownValues.sql_words``:
# at anything but ASCII letters and digits and the letters of other scripts (Latin, Greek,
# Cyrillic, CJK, Hangul, fullwidth Latin; punctuation, symbols and spaces between them split).
SQL_WORD_SEPARATORS = (
    "[^a-z0-9\u00aa\u00b5\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0370-\u1fff"
    "\u2c00-\u2dff\u3040-\u9fff\uac00-\ud7af\uff21-\uff3a\uff41-\uff5a]+"
)


def words_of(text: str) -> set[str]:
    """The lower-case words of a text, split as the values' words are."""
    return set(_TOKEN.findall(text.lower()))


def _words_in(value: Any, into: set[str]) -> set[str]:
    """The lower-case words of every string (keys too) in JSON-like data."""
    if isinstance(value, str):
        into.update(_TOKEN.findall(value.lower()))
    elif isinstance(value, dict):
        for key, item in value.items():
            _words_in(key, into)
            _words_in(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _words_in(item, into)
    return into


def _both_cases(ch: str) -> str:
    if ch.isascii() or ch.lower() == ch.upper() or len(ch.upper()) != 1 or len(ch.lower()) != 1:
        return ch
    return f"[{ch.lower()}{ch.upper()}]"


def _spellings(value: str) -> set[str]:
    """The value, with German umlauts spelled out, and in plain ASCII (accents dropped)."""
    folded = unicodedata.normalize("NFKD", value.translate(_ASCII_LETTERS)).encode("ascii", "ignore").decode("ascii")
    return {value, value.translate(_TRANSLITERATION), folded} - {""}


def _words(value: str) -> list[str]:
    return _TOKEN.findall(value)


def known_values(email: str | None, full_name: str | None, address: str | None) -> KnownValues:
    """What an erasure must remove from the person's own rows (see KnownValues)."""
    found: set[tuple[tuple[str, ...], int, bool, tuple[str, ...]]] = set()
    anchors: set[str] = set()

    def add(parts: list[str], single: bool = False, words: list[str] | None = None, email_at: int = 0) -> None:
        words = parts if words is None else words
        if words and sum(map(len, words)) >= _MIN_PART:
            found.add((tuple(parts), email_at, single, tuple(words)))
            anchors.add(max(words, key=len).lower())

    local, _at, domain = (email or "").strip().partition("@")
    local_parts, domain_parts = [p for p in local.split(".") if p], [p for p in domain.split(".") if p]
    if local_parts and domain_parts:
        add(local_parts + domain_parts, words=_words(local) + _words(domain), email_at=len(local_parts))
    if len(local) > _MIN_PART:
        # The local part alone, dots spelled any way. In rows of anybody only one of two or more
        # words ("jane.doe") counts: "john" or "info" alone is somebody else's as often as not.
        add(local_parts, single=len(local_parts) < 2, words=_words(local), email_at=len(local_parts))
    for spelling in _spellings(full_name or ""):
        words = _words(spelling)
        add(words)
        add(words[::-1])
        for word in words:
            add([word], single=True)
    for spelling in _spellings(address or ""):
        add(_words(spelling))
        lines = [words for words in map(_words, re.split(r"[,\n;]", spelling)) if any(not w.isdigit() for w in words)]
        if lines:
            add(lines[0])  # the street and number
            add([w for w in lines[0] if not w.isdigit()], single=True)  # the street alone
        for words in lines[1:]:
            add(words, single=True)  # "10115 Berlin": theirs in their rows, anybody's elsewhere
    return KnownValues(frozenset(found), tuple(sorted(anchors)))


def _any_of(regexes: list[str]) -> re.Pattern[str] | None:
    if not regexes:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(regexes) + r")(?!\w)", re.IGNORECASE)


def erase_strings(value: Any) -> Any:
    """A copy of JSON-like data with every string value replaced by ``[erased]`` (keys and numbers
    stay): the metadata of an event that arrives after its user was erased, when the person's own
    values are no longer known and any free text might be theirs."""
    if isinstance(value, str):
        return ERASED
    if isinstance(value, dict):
        return {key: erase_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [erase_strings(item) for item in value]
    return value


def scrub_known_values(value: Any, known: KnownValues) -> tuple[Any, int]:
    """A copy of JSON-like data with the person's values replaced by ``[erased]`` in every string
    (keys too; numbers are left alone: a person's email, name and address are text); return it
    with the number of replacements (0: nothing of theirs was there)."""
    if not known.could_be_in(_words_in(value, set())) or (pattern := known.pattern) is None:
        return value, 0
    found = 0

    def scrub(text: str) -> str:
        nonlocal found
        text, n = pattern.subn(ERASED, text)
        found += n
        return text

    return _walk(value, scrub, lambda n: n), found


def mentions_known_values(text: str, known: KnownValues) -> int:
    """How many of the person's values, as a whole (``KnownValues.whole``), are written in a
    text that may be about anybody (a dead letter)."""
    if not known.could_be_in(words_of(text), whole=True) or known.whole is None:
        return 0
    return len(known.whole.findall(text))


# Pseudonyms sort after every real user id (a real UUIDv4 starts with ffffffff once in 4 billion):
# erasure moves 100,000 events to new ids, and inserting those keys at random places in the
# user_id index of ten million events dirties nearly every page of it; after the last real id
# they fill a few pages at its right edge.
PSEUDONYM_PREFIX = b"\xff\xff\xff\xff"


def new_pseudonymous_user_id() -> str:
    """A fresh random user id (a version 4 UUID from the OS's secure source), linked to nothing.

    Erasure moves a person's rows to such an id, and an event that arrives later for an erased
    user gets one of its own, so nothing can be joined back to the former id (Recital 26).
    """
    return str(uuid.UUID(bytes=PSEUDONYM_PREFIX + os.urandom(16 - len(PSEUDONYM_PREFIX)), version=4))
