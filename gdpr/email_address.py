"""What a privacy request may name as an email address, and the key it is matched by.

Internationalised addresses (RFC 6531: ``josé@example.com``, ``用户@例子.广告``) are mailboxes
too, and their owners have the same rights: they are accepted, normalised to Unicode NFC and
matched exactly as stored. Plain ASCII addresses are matched without regard to case, as they
always were (``lower(email)``, the unique index of ``users_pii``). Only what cannot be a mailbox
is refused: no ``@``, an invalid domain, control or invisible characters (a zero-width space
would make a look-alike of somebody else's address), more than 254 characters. Syntax is
checked by ``email-validator``, never the deliverability (no DNS look-up).

A look-alike (a Cyrillic a in a Latin name, a full-width letter) is a different string and
so a different mailbox: it matches nobody else's address, and through the API the mailed code
proves who holds it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

import email_validator
from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # RFC 5321 path limit, less the angle brackets
# Letters, digits and hyphens per label (ASCII or IDNA), for a special-use domain's syntax.
_LABEL = re.compile(r"(?!-)[\w-]{1,63}(?<!-)")


class InvalidEmail(ValueError):
    """Not a mailbox; the message says why without quoting the input."""


def _special_use(domain: str) -> bool:
    name = domain.lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in email_validator.SPECIAL_USE_DOMAIN_NAMES)


def _reserved_domain_address(text: str) -> bool:
    """An address at a special-use domain (``.invalid``, ``.local``, ``.test``, ...) whose parts
    are otherwise well-formed: no mail reaches it, but a source system may have stored it."""
    local, _, domain = text.rpartition("@")
    if not local or not _special_use(domain) or not all(_LABEL.fullmatch(label) for label in domain.rstrip(".").split(".")):
        return False
    try:
        validate_email(f"{local}@example.com", check_deliverability=False, allow_smtputf8=True, allow_quoted_local=False)
    except EmailNotValidError:
        return False
    return True


def normalise(raw: str | None, *, deliverable: bool = True) -> str:
    """The match key of an address: ASCII lower-cased, anything else NFC as given.

    ``deliverable=False`` also accepts a special-use domain (RFC 6761: ``.invalid``, ``.local``,
    ``.test``): an operator's request for a stored address must find it, though no code could
    ever be mailed there (the API keeps the default)."""
    if raw is None or not raw.strip():
        raise InvalidEmail("no email address given")
    text = unicodedata.normalize("NFC", raw.strip())
    if len(text) > MAX_LENGTH:
        raise InvalidEmail(f"email address longer than {MAX_LENGTH} characters")
    if not text.isprintable() or any(unicodedata.category(c) in ("Cf", "Zs", "Zl", "Zp") for c in text):
        raise InvalidEmail("email address contains control, invisible or space characters")
    try:
        validate_email(text, check_deliverability=False, allow_smtputf8=True, allow_quoted_local=False)
    except EmailNotValidError as e:
        if deliverable or not _reserved_domain_address(text):
            raise InvalidEmail("not a valid email address") from e
    return text.lower() if text.isascii() else text


def mailbox(key: str) -> str:
    """The inbox a match key delivers to, for limits on how often it is written to: the local
    part NFKC case-folded, the domain in its IDNA ASCII form (email-validator's UTS 46 mapping),
    so ``bomb@EXÄMPLE.de``, ``BOMB@exämple.de`` and ``bomb@xn--exmple-cua.de`` are one inbox.
    Not a match key: a mail server may tell case apart in a local part, a limit errs to be safe."""
    try:
        parsed = validate_email(key, check_deliverability=False, allow_smtputf8=True, allow_quoted_local=False)
    except EmailNotValidError:  # a special-use domain an operator filed: no IDNA form to take
        local, _, domain = key.rpartition("@")
        return f"{unicodedata.normalize('NFKC', local).casefold()}@{domain.lower().rstrip('.')}"
    return f"{unicodedata.normalize('NFKC', parsed.local_part).casefold()}@{parsed.ascii_domain.lower()}"


def is_ascii(key: str) -> bool:
    """Whether a match key is compared case-insensitively (``lower(email)``) or exactly."""
    return key.isascii()


def email_hmac(key: bytes, email: str) -> str:
    """Keyed hash of a match key: proves which address a request was about, reveals nothing."""
    return hmac.new(key, email.encode("utf-8"), hashlib.sha256).hexdigest()
