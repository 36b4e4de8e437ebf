"""The analysts' accounts (sql/045): who may call the analysts' API, as which role, by which token.

A token is ``dpa_`` and 256 random bits (43 URL-safe characters), shown once when the account is
made; only its SHA-256 is stored (nobody can search 2^256 values, so a key adds nothing), and a
presented token is compared with the stored hash in constant time. Roles: ``analyst`` (releases
only) and ``dpo`` (the budgets and the privacy ledger). A disabled account keeps its name: the
privacy ledger names the analyst of every release.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import psycopg2.errors

from core import db
from core.errors import PlatformError

TOKEN_PREFIX = "dpa_"  # noqa: S105 - what every token starts with, not a token
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"dpa_[A-Za-z0-9_-]{43}", re.ASCII)
NAME_PATTERN = re.compile(r"[a-z][a-z0-9._-]{1,39}", re.ASCII)
# Compared against when no account holds a token, so an unknown token costs what a known one does.
ABSENT_HASH = "0" * 64


class Role(StrEnum):
    """What an account may ask the API for."""

    ANALYST = "analyst"  # releases (noise-protected figures), drawn from its own budget
    DPO = "dpo"  # the budgets and the privacy ledger


class AccountError(PlatformError):
    """An account that cannot be made or changed as asked (a taken or malformed name, none such)."""


@dataclass(frozen=True)
class Account:
    """An analyst's account, never its token."""

    id: int
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None = None
    budget: float | None = None  # the yearly epsilon of the analyst's budget (privacy_budgets), if any


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as its token says: what the API needs of an account."""

    name: str
    role: Role


def new_token() -> str:
    """A fresh bearer token: shown once, stored as its hash."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The stored form of ``token``: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def check_name(name: str) -> str:
    """``name`` when it is an account name (2-40 lower-case letters, digits, '.', '_', '-', a letter
    first); AccountError otherwise."""
    if NAME_PATTERN.fullmatch(name) is None:
        raise AccountError(
            f"{name[:50]!r} is not an account name: 2-40 lower-case letters, digits, '.', '_' or '-', starting with a letter"
        )
    return name


def create(cur: db.Cursor, name: str, role: Role) -> tuple[Account, str]:
    """Make the account ``name``; return it and its token (the only time the token exists in
    clear). AccountError when the name is taken or malformed."""
    check_name(name)
    token = new_token()
    cur.execute("SAVEPOINT create_analyst")
    try:
        cur.execute(
            "INSERT INTO analyst_accounts (name, role, token_hash) VALUES (%s, %s, %s) RETURNING id, created_at",
            (name, role.value, token_hash(token)),
        )
    except psycopg2.errors.UniqueViolation as e:
        cur.execute("ROLLBACK TO SAVEPOINT create_analyst")
        raise AccountError(f"an account named {name!r} exists already (disabled accounts keep their names)") from e
    row = cur.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns its row
    account_id, created_at = row
    return Account(account_id, name, role, created_at), token


def disable(cur: db.Cursor, name: str) -> Account:
    """Disable ``name``'s account: its token is refused from the next request on. AccountError
    when there is no such account or it is disabled already."""
    cur.execute(
        "UPDATE analyst_accounts SET disabled_at = now() WHERE name = %s AND disabled_at IS NULL"
        " RETURNING id, name, role, created_at, disabled_at, NULL::numeric",
        (name,),
    )
    row = cur.fetchone()
    if row is None:
        raise AccountError(f"no enabled account is named {name[:50]!r}: see `python -m analytics.accounts list`")
    return _account(row)


def list_accounts(cur: db.Cursor) -> list[Account]:
    """Every account, by name."""
    cur.execute(
        "SELECT a.id, a.name, a.role, a.created_at, a.disabled_at, b.epsilon"
        " FROM analyst_accounts a LEFT JOIN privacy_budgets b ON b.analyst = a.name ORDER BY a.name"
    )
    return [_account(row) for row in cur.fetchall()]


def enabled_analysts(cur: db.Cursor) -> list[str]:
    """The names of the enabled analyst accounts, by name: whom a budget may be set for (the DPO
    console's login reads only these columns, sql/049)."""
    cur.execute("SELECT name FROM analyst_accounts WHERE role = 'analyst' AND disabled_at IS NULL ORDER BY name")
    return [name for (name,) in cur.fetchall()]


def holder(cur: db.Cursor, token: str) -> Caller | None:
    """The enabled account holding ``token``, or None (a malformed, unknown or disabled one). The
    lookup is by the token's hash; the stored hash is compared in constant time all the same."""
    presented = token_hash(token) if TOKEN_PATTERN.fullmatch(token) else ABSENT_HASH
    cur.execute(
        "SELECT name, role, token_hash, disabled_at FROM analyst_accounts WHERE token_hash = %s",
        (presented,),
    )
    row = cur.fetchone()
    stored = row[2] if row is not None else ABSENT_HASH
    if not hmac.compare_digest(presented, stored) or row is None or row[3] is not None:
        return None
    return Caller(row[0], Role(row[1]))


def _account(row: tuple[object, ...]) -> Account:
    account_id, name, role, created_at, disabled_at, budget = row
    assert isinstance(account_id, int) and isinstance(name, str) and isinstance(role, str)  # noqa: S101 - the table's types
    assert isinstance(created_at, datetime)  # noqa: S101
    return Account(
        account_id,
        name,
        Role(role),
        created_at,
        disabled_at if isinstance(disabled_at, datetime) else None,
        float(budget) if isinstance(budget, float | int | Decimal) else None,
    )
