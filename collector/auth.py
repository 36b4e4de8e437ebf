"""Write keys: how they are made, stored (hashed), read back, and found for a request.

A key is ``ck_`` and 256 random bits (``secrets.token_urlsafe(32)``). The database keeps only
its SHA-256: a slow password hash protects guessable secrets, and nobody guesses 256 random bits
(sql/010 says the same). The collector holds the live keys in a dictionary by hash, reloaded in
the background, so checking a request's key is one hash and one lookup, never a query. A lookup
by hash leaks nothing through timing an attacker can use: the dictionary compares SHA-256
digests of the key, which the attacker cannot steer byte by byte.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from core.db import Cursor
from core.errors import InvalidInput

KEY_PREFIX = "ck_"
# Enough of the key for an operator to tell keys apart in a listing (48 of its 256 bits).
SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 8
NAME_PATTERN = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # the CHECK in sql/010
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class WriteKey:
    """A live key as the collector knows it: never the key itself, nor its hash."""

    id: int
    name: str
    origins: frozenset[str]
    rate_per_s: int
    may_record_consent: bool = False

    def allows_origin(self, origin: str) -> bool:
        """Whether a browser page at ``origin`` may send events with this key."""
        return origin.lower() in self.origins


@dataclass(frozen=True)
class KeyListing:
    """What ``python -m collector.keys list`` shows of a key."""

    name: str
    prefix: str
    origins: list[str]
    rate_per_s: int
    created_at: datetime
    revoked_at: datetime | None
    may_record_consent: bool


def new_key() -> str:
    """A fresh write key: the prefix, then 256 random bits in URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The SHA-256 of a key, in hexadecimal: what the database stores and the collector looks up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def presented_key(authorization: str | None, write_key_header: str | None) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>``, or ``X-Write-Key: <key>``
    for tools that cannot set Authorization; None when it carries neither."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if write_key_header and write_key_header.strip():
        return write_key_header.strip()
    return None


def check_name(name: str) -> str:
    """A key's name as the database accepts it; InvalidInput otherwise."""
    if not NAME_PATTERN.match(name):
        raise InvalidInput(f"key name {name!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return name


def normalise_origin(text: str) -> str:
    """A browser origin as browsers send it (``https://shop.example``, ``http://localhost:3000``):
    scheme and host in lower case, a default port left out; InvalidInput for anything else."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError as e:
        raise InvalidInput(f"origin {text!r} has an invalid port") from e
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise InvalidInput(f"origin {text!r} must look like https://host or http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput(f"origin {text!r} must be scheme://host[:port] only, without path, query or user")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != DEFAULT_PORTS[scheme] else "")


class KeyRing:
    """The live keys by hash, and the hashes of revoked ones (to say "revoked", not "unknown").

    Replaced whole on each reload: a request reads one consistent snapshot.
    """

    def __init__(self, live: dict[str, WriteKey] | None = None, revoked: frozenset[str] = frozenset()) -> None:
        self.replace(live or {}, revoked)

    def replace(self, live: dict[str, WriteKey], revoked: frozenset[str]) -> None:
        """Swap in a freshly loaded set of keys: one assignment, so a request on the event loop
        never sees the live keys of one reload with the revoked ones of another."""
        self._state = (live, revoked, frozenset(origin for key in live.values() for origin in key.origins))

    def __len__(self) -> int:
        return len(self._state[0])

    def snapshot(self) -> frozenset[WriteKey]:
        """The live keys, to tell whether a reload changed anything."""
        return frozenset(self._state[0].values())

    def find(self, key: str) -> WriteKey | None:
        """The live key ``key`` is, or None."""
        return self._state[0].get(hash_key(key))

    def is_revoked(self, key: str) -> bool:
        return hash_key(key) in self._state[1]

    def any_allows_origin(self, origin: str) -> bool:
        """Whether some live key lets a page at ``origin`` send (a CORS preflight carries no key)."""
        return origin.lower() in self._state[2]


def load_keys(cur: Cursor) -> tuple[dict[str, WriteKey], frozenset[str]]:
    """Every live key by hash, and the hashes of revoked keys (columns the event_collector role
    may read)."""
    cur.execute(
        "SELECT id, name, key_hash, allowed_origins, rate_per_s, revoked_at, may_record_consent FROM collector_write_keys"
    )
    live: dict[str, WriteKey] = {}
    revoked: set[str] = set()
    for key_id, name, key_hash, origins, rate, revoked_at, consent in cur.fetchall():
        if revoked_at is None:
            live[key_hash] = WriteKey(key_id, name, frozenset(o.lower() for o in origins), rate, consent)
        else:
            revoked.add(key_hash)
    return live, frozenset(revoked - live.keys())


def create_key(cur: Cursor, name: str, origins: list[str], rate_per_s: int, *, may_record_consent: bool = False) -> str:
    """Store a new live key named ``name``; return the key (shown once, never stored)."""
    key = new_key()
    cur.execute(
        "INSERT INTO collector_write_keys (name, key_hash, key_prefix, allowed_origins, rate_per_s, may_record_consent)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (check_name(name), hash_key(key), key[:SHOWN_PREFIX_CHARS], origins, rate_per_s, may_record_consent),
    )
    return key


def list_keys(cur: Cursor) -> list[KeyListing]:
    """Every key, live and revoked, oldest first: never the key or its hash."""
    cur.execute(
        "SELECT name, key_prefix, allowed_origins, rate_per_s, created_at, revoked_at, may_record_consent"
        " FROM collector_write_keys ORDER BY created_at, id"
    )
    return [KeyListing(*row) for row in cur.fetchall()]


def revoke_key(cur: Cursor, name: str) -> int:
    """Revoke the live key named ``name``; return how many were revoked (0 or 1)."""
    cur.execute("UPDATE collector_write_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,))
    return cur.rowcount
