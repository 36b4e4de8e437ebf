"""DPO accounts, passwords, sessions and the brake on password guessing.

* Passwords are hashed with Argon2id (argon2-cffi's ``PasswordHasher``, its RFC 9106 defaults:
  64 MiB, 3 passes); a hash made with weaker parameters is
  replaced at the next successful login.
* A login for an unknown or disabled account verifies against a dummy hash, so it takes as
  long as one for a real account: the answer time does not tell which names exist.
* A session is a random 256-bit token in an HttpOnly cookie; only its SHA-256 is stored
  (``dpo_sessions``), with its CSRF token and expiry. A disabled account's sessions end at once.
* After ``MAX_FAILURES`` failed logins in a row an account name is refused for ``LOCKOUT_S``
  seconds, whatever the password: online guessing gets a handful of tries per minutes. Each
  attempt counts before its hash is checked, so simultaneous guesses get no more tries.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg2.errors
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import db

# The dpo_accounts CHECK (sql/014): lower-case, starts with a letter, 2-40 characters.
USERNAME = re.compile(r"\A[a-z][a-z0-9._-]{1,39}\Z")
# NIST SP 800-63B asks for at least 8; a DPO account reaches every request in the queue.
MIN_PASSWORD_LENGTH = 12
# Long enough for any passphrase; a megabyte "password" would only cost hashing time.
MAX_PASSWORD_LENGTH = 1024
MAX_FAILURES = 5
LOCKOUT_S = 300.0
# Names whose failures are remembered: a flood of made-up names cannot grow the memory beyond this.
MAX_TRACKED_NAMES = 10_000


class AccountError(ValueError):
    """A username or password that cannot be used, or an account that does not exist."""


def check_username(name: str) -> str:
    if not USERNAME.match(name):
        raise AccountError("a username is 2-40 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters (a passphrase of a few words is best)")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    return password


class Passwords:
    """Argon2id hashing and verification, constant-ish in time whether the account exists or not."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self.hasher.hash(check_password(password))

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with no stored hash (unknown account) the
        same work is done against a dummy and the answer is no."""
        usable = stored is not None and len(password) <= MAX_PASSWORD_LENGTH
        try:
            matched = self.hasher.verify(stored if usable and stored else self._dummy, password[:MAX_PASSWORD_LENGTH])
        except (VerificationError, InvalidHashError):
            return False
        return matched and usable

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)


@dataclass(frozen=True)
class Account:
    username: str
    created_at: datetime
    disabled_at: datetime | None


def create_account(cur: db.Cursor, username: str, password_hash: str) -> None:
    """AccountError when the name is taken (a disabled account keeps its name: the audit trail
    names its actions)."""
    cur.execute("SAVEPOINT create_account")
    try:
        cur.execute(
            "INSERT INTO dpo_accounts (username, password_hash) VALUES (%s, %s)", (check_username(username), password_hash)
        )
    except psycopg2.errors.UniqueViolation as e:
        cur.execute("ROLLBACK TO SAVEPOINT create_account")
        raise AccountError(f"an account named {username!r} exists (disabled accounts keep their names)") from e
    cur.execute("RELEASE SAVEPOINT create_account")


def disable_account(cur: db.Cursor, username: str) -> None:
    """Disable the account and end its sessions; AccountError when there is no enabled one."""
    cur.execute(
        "UPDATE dpo_accounts SET disabled_at = now() WHERE username = %s AND disabled_at IS NULL RETURNING username", (username,)
    )
    if cur.fetchone() is None:
        raise AccountError(f"no enabled account named {username!r}: see `python -m console.accounts list`")
    cur.execute("DELETE FROM dpo_sessions WHERE username = %s", (username,))


def list_accounts(cur: db.Cursor) -> list[Account]:
    cur.execute("SELECT username, created_at, disabled_at FROM dpo_accounts ORDER BY username")
    return [Account(*row) for row in cur.fetchall()]


def count_enabled(cur: db.Cursor) -> int:
    cur.execute("SELECT count(*) FROM dpo_accounts WHERE disabled_at IS NULL")
    row = cur.fetchone()
    return 0 if row is None else int(row[0])


@dataclass(frozen=True)
class Session:
    username: str
    csrf_token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    """What is stored of a session token: a random 256-bit token needs no slow hash."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def login(cur: db.Cursor, passwords: Passwords, username: str, password: str, hours: int) -> tuple[str, Session] | None:
    """A new session's token and the session when the account is enabled and the password is
    right; None otherwise (same work either way). Expired sessions are swept here."""
    known = USERNAME.match(username) is not None
    stored = None
    if known:
        cur.execute("SELECT password_hash FROM dpo_accounts WHERE username = %s AND disabled_at IS NULL", (username,))
        row = cur.fetchone()
        stored = None if row is None else row[0]
    if not passwords.verify(stored, password):
        return None
    assert stored is not None  # noqa: S101 - verify() is False without a stored hash
    if passwords.needs_rehash(stored):
        cur.execute("UPDATE dpo_accounts SET password_hash = %s WHERE username = %s", (passwords.hash(password), username))
    cur.execute("DELETE FROM dpo_sessions WHERE expires_at < now()")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    cur.execute(
        "INSERT INTO dpo_sessions (token_hash, username, csrf_token, expires_at)"
        " VALUES (%s, %s, %s, now() + make_interval(hours => %s)) RETURNING expires_at",
        (token_hash(token), username, csrf, hours),
    )
    row = cur.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING
    return token, Session(username, csrf, row[0])


def find_session(cur: db.Cursor, token: str) -> Session | None:
    """The live session of this token: not expired, its account enabled."""
    cur.execute(
        "SELECT s.username, s.csrf_token, s.expires_at FROM dpo_sessions AS s JOIN dpo_accounts AS a USING (username)"
        " WHERE s.token_hash = %s AND s.expires_at > now() AND a.disabled_at IS NULL",
        (token_hash(token),),
    )
    row = cur.fetchone()
    return None if row is None else Session(*row)


def logout(cur: db.Cursor, token: str) -> None:
    cur.execute("DELETE FROM dpo_sessions WHERE token_hash = %s", (token_hash(token),))


class Throttle:
    """Failed logins per account name, in this process's memory (the console runs as one
    process): after ``max_failures`` in a row the name is refused for ``lockout_s`` seconds."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        lockout_s: float = LOCKOUT_S,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED_NAMES,
    ) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.clock = clock
        self.max_tracked = max_tracked
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # name -> (count, last failure)
        self._lock = threading.Lock()

    def retry_after(self, username: str) -> float:
        """Seconds until ``username`` may try again; 0 when it may now."""
        with self._lock:
            return self._locked_for(username, self.clock())

    def _locked_for(self, username: str, now: float) -> float:
        count, last = self._failures.get(username, (0, 0.0))
        if count < self.max_failures:
            return 0.0
        left = last + self.lockout_s - now
        if left <= 0:
            del self._failures[username]
            return 0.0
        return left

    def attempt(self, username: str) -> float:
        """Count a login attempt as a failure before its password is checked, and say how many
        seconds ``username`` must wait (nothing counted) when it is locked; ``succeeded`` then
        clears the count. Counting after the check let 30 simultaneous guesses all pass the
        brake while their hashes were computed."""
        with self._lock:
            now = self.clock()
            wait = self._locked_for(username, now)
            if wait > 0:
                return wait
            count, _ = self._failures.pop(username, (0, 0.0))
            self._failures[username] = (count + 1, now)
            while len(self._failures) > self.max_tracked:
                self._failures.popitem(last=False)
            return 0.0

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)
