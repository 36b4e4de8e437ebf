"""A request's secret and its mailed code: how they are made, stored and compared.

Only hashes are stored. The secret (256 random bits) is stored as its SHA-256: nobody can guess
a value that long, so a key adds nothing. The code is short (8 digits) and would fall to a
search of its 10^8 values, so it is stored as an HMAC under GDPR_HMAC_KEY, bound to its request:
a database dump alone recovers no code. Comparisons take constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# 8 digits: with 5 tries a guesser wins 5 times in 10^8; still short enough to type from a mail.
CODE_DIGITS = 8
# secrets.token_urlsafe(32): 32 random bytes in 43 URL-safe characters.
SECRET_BYTES = 32
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)
CODE_PATTERN = re.compile(rf"[0-9]{{{CODE_DIGITS}}}", re.ASCII)
# Compared against when a request is not found, so an unknown id costs what a wrong secret does.
ABSENT_HASH = "0" * 64


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def secret_matches(secret: str, stored: str | None) -> bool:
    """Whether ``secret`` is the one whose hash is ``stored`` (constant time; None never matches)."""
    return hmac.compare_digest(secret_hash(secret), stored or ABSENT_HASH) and stored is not None


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(key: bytes, request_id: int, code: str) -> str:
    """The stored form of request ``request_id``'s code: an HMAC, never the code."""
    return hmac.new(key, f"{request_id}:{code}".encode("ascii"), hashlib.sha256).hexdigest()


def code_matches(key: bytes, request_id: int, code: str, stored: str) -> bool:
    return hmac.compare_digest(code_hash(key, request_id, code), stored)
