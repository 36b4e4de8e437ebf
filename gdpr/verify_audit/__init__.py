"""``python -m gdpr.verify_audit``: check the audit trail's hash chain and name the first broken row.

Each ``privacy_audit_log`` row holds the hash of the row before it and its own: SHA-256 over the
previous hash and the row's fields (sql/013). This command recomputes every hash here, in
Python, rather than trusting the database's function, and walks the rows in id order: a row
altered, inserted or deleted in the middle breaks the chain at that row. Rows removed from the
end leave a shorter chain that is still whole, so the command prints the last hash: keep it
somewhere the database's owner cannot write (a ticket, a signed log) and compare it next time
with ``--expect-head``.

The chain alone proves nothing to someone who could rewrite the table with its triggers off (the
owner): they can recompute every hash. So each whole check also seals the head it checked: an
HMAC-SHA256 under AUDIT_SEAL_KEY, a key the database never holds, of the row's id and hash, kept
in ``privacy_audit_seals`` (sql/031). Every later check recomputes every seal and requires the
sealed row to carry the sealed hash: a chain recomputed from any row before the last seal fails,
and so does a seal made without the key. Rows after the last seal are only as safe as the chain;
the seals themselves can be deleted by the owner, which ``--expect-head`` catches.

The privacy ledger (sql/043) is chained the same way and its head sealed by the same code
(:class:`Chain`: the chained table and its seals' table, ``privacy_ledger_seals``, sql/049), so a
ledger rewritten and recomputed, or cut short below a sealed row, is reported too.

Exit status: 0 when the chain is whole, 1 when it is broken (the first broken row is named), 2
when the check cannot run.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from psycopg2 import sql

from core import db
from core.config import Settings

logger = logging.getLogger(__name__)

SEPARATOR = "\x1f"  # the unit separator: no field of a row contains it
_FETCH = 10_000


@dataclass(frozen=True)
class Verdict:
    """How many rows were checked, the first broken one (None: the chain is whole) and why, and
    the hash of the last row ("" for an empty trail)."""

    rows: int
    broken_at: int | None
    reason: str
    head: str
    last_id: int | None = None


class AuditRow(NamedTuple):
    """A row of the trail as the check reads it (``details`` as jsonb's canonical text)."""

    id: int
    request_id: int
    action: str
    actor: str
    details: str
    at: datetime
    prev_hash: str
    row_hash: str


def expected_hash(row: AuditRow) -> str:
    """The hash ``row`` must carry: the same formula as privacy_audit_row_hash in sql/013."""
    stamp = row.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    fields = (row.prev_hash, str(row.id), str(row.request_id), row.action, row.actor, row.details, stamp)
    return hashlib.sha256(SEPARATOR.join(fields).encode("utf-8")).hexdigest()


def check_chain(rows: Iterable[tuple[int, int, str, str, str, datetime, str, str]]) -> Verdict:
    """Walk the rows (AuditRow's fields) in id order; stop at the first whose link or hash is wrong."""
    previous = ""
    count = 0
    last_id: int | None = None
    for fields in rows:
        row = AuditRow._make(fields)
        count += 1
        if row.prev_hash != previous:
            reason = "its link to the row before it is wrong: a row before it was changed, removed or inserted"
            return Verdict(count, row.id, reason, previous)
        if expected_hash(row) != row.row_hash:
            return Verdict(count, row.id, "its contents do not match its hash: the row was changed", previous)
        previous = row.row_hash
        last_id = row.id
    return Verdict(count, None, "", previous, last_id)


def seal_mac(key: bytes, audit_id: int, row_hash: str) -> str:
    """The seal of row ``audit_id`` carrying ``row_hash``: hex HMAC-SHA256 under the seal key."""
    return hmac.new(key, f"{audit_id}{SEPARATOR}{row_hash}".encode(), hashlib.sha256).hexdigest()


def check_seals(key: bytes, seals: Iterable[tuple[int, int, str, str, str | None]]) -> str | None:
    """Why the seals (seal id, row id, sealed hash, MAC, the row's hash now or None) do not hold,
    or None when every one does."""
    for seal_id, audit_id, sealed, mac, now in seals:
        if not hmac.compare_digest(seal_mac(key, audit_id, sealed), mac):
            return f"seal {seal_id} was not made with AUDIT_SEAL_KEY: it was forged (or the key changed)"
        if now is None:
            return f"row {audit_id}, sealed by seal {seal_id}, is gone"
        if now != sealed:
            return f"row {audit_id} no longer has the hash seal {seal_id} sealed: the chain was rewritten and recomputed"
    return None


@contextmanager
def _auditor_cursor(settings: Settings) -> Iterator[db.Cursor]:
    """A cursor in one transaction as the auditor's login (it may read the trail and append seals)."""
    with (
        db.connection(settings.database, application_name="verify_audit", role=db.AUDITOR_ROLE) as conn,
        conn,
        conn.cursor() as cur,
    ):
        yield cur


def verify(settings: Settings) -> Verdict:
    """Check the whole trail, as the auditor's role (it may read the trail, nothing it holds)."""
    with (
        db.connection(settings.database, application_name="verify_audit", role=db.AUDITOR_ROLE) as conn,
        conn,
        conn.cursor(name="audit_chain") as cur,
    ):
        cur.itersize = _FETCH
        cur.execute(
            "SELECT id, request_id, action, actor, details::text, at, prev_hash, row_hash FROM privacy_audit_log ORDER BY id"
        )
        return check_chain(cur)


@dataclass(frozen=True)
class Chain:
    """A hash-chained table and the table of its seals (``sealed``: the seals' column naming the row)."""

    table: str
    seals: str
    sealed: str


AUDIT_TRAIL = Chain("privacy_audit_log", "privacy_audit_seals", "audit_id")  # sql/031
PRIVACY_LEDGER = Chain("privacy_ledger", "privacy_ledger_seals", "ledger_id")  # sql/049


def verify_seals(settings: Settings, key: bytes, chain: Chain = AUDIT_TRAIL) -> tuple[int, str | None]:
    """How many seals ``chain`` has, and why they do not hold (None: they all do)."""
    with _auditor_cursor(settings) as cur:
        cur.execute(
            sql.SQL(
                "SELECT s.id, s.{sealed}, s.row_hash, s.mac, l.row_hash FROM {seals} s"
                " LEFT JOIN {table} l ON l.id = s.{sealed} ORDER BY s.id"
            ).format(sealed=sql.Identifier(chain.sealed), seals=sql.Identifier(chain.seals), table=sql.Identifier(chain.table))
        )
        seals = cur.fetchall()
    return len(seals), check_seals(key, seals)


def seal(settings: Settings, key: bytes, row_id: int, row_hash: str, chain: Chain = AUDIT_TRAIL) -> None:
    """Seal ``chain``'s row ``row_id`` (just checked to carry ``row_hash``), unless it is sealed already."""
    with _auditor_cursor(settings) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {seals} ({sealed}, row_hash, mac) SELECT %(id)s, %(hash)s, %(mac)s"
                " WHERE NOT EXISTS (SELECT FROM {seals} WHERE {sealed} = %(id)s AND row_hash = %(hash)s)"
            ).format(seals=sql.Identifier(chain.seals), sealed=sql.Identifier(chain.sealed)),
            {"id": row_id, "hash": row_hash, "mac": seal_mac(key, row_id, row_hash)},
        )


class LedgerRow(NamedTuple):
    """A row of the privacy ledger (sql/043) as the check reads it (epsilon and details as text)."""

    id: int
    analyst: str
    query: str
    mechanism: str
    epsilon: str
    details: str
    at: datetime
    prev_hash: str
    row_hash: str


def expected_ledger_hash(row: LedgerRow) -> str:
    """The hash a ledger row must carry: the same formula as privacy_ledger_row_hash in sql/043."""
    stamp = row.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    fields = (row.prev_hash, str(row.id), row.analyst, row.query, row.mechanism, row.epsilon, row.details, stamp)
    return hashlib.sha256(SEPARATOR.join(fields).encode("utf-8")).hexdigest()


def check_ledger_chain(rows: Iterable[tuple[int, str, str, str, str, str, datetime, str, str]]) -> Verdict:
    """Walk the ledger's rows (LedgerRow's fields) in id order, as check_chain walks the trail's."""
    previous = ""
    count = 0
    last_id: int | None = None
    for fields in rows:
        row = LedgerRow._make(fields)
        count += 1
        if row.prev_hash != previous:
            reason = "its link to the row before it is wrong: a row before it was changed, removed or inserted"
            return Verdict(count, row.id, reason, previous)
        if expected_ledger_hash(row) != row.row_hash:
            return Verdict(count, row.id, "its contents do not match its hash: the row was changed", previous)
        previous = row.row_hash
        last_id = row.id
    return Verdict(count, None, "", previous, last_id)


def verify_ledger(settings: Settings) -> Verdict:
    """Check the privacy ledger's chain (issue 29), as the auditor's role."""
    with (
        db.connection(settings.database, application_name="verify_audit", role=db.AUDITOR_ROLE) as conn,
        conn,
        conn.cursor(name="ledger_chain") as cur,
    ):
        cur.itersize = _FETCH
        cur.execute(
            "SELECT id, analyst, query, mechanism, epsilon::text, details::text, at, prev_hash, row_hash"
            " FROM privacy_ledger ORDER BY id"
        )
        return check_ledger_chain(cur)


def contains(settings: Settings, head: str) -> bool:
    """Whether a row of the trail still has the hash ``head``."""
    with _auditor_cursor(settings) as cur:
        cur.execute("SELECT EXISTS (SELECT FROM privacy_audit_log WHERE row_hash = %s)", (head,))
        row = cur.fetchone()
        return bool(row and row[0])
