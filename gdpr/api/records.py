"""The API's statements on ``privacy_requests``, ``privacy_verifications`` and the audit trail.

Every value is a parameter. The privacy_api role may read a request's status columns, never its
email or corrections, and may change only what the API itself changes (sql/014, sql/016).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json

from core import db
from gdpr.api.payloads import NewRequest

_COLUMNS = sql.SQL(
    "id, request_type, status, outcome, secret_hash, requested_at, due_at, processed_at, verified_at,"
    " export_path, export_expires_at, export_downloaded_at"
)


@dataclass(frozen=True)
class Request:
    """What the API may see of a request."""

    id: int
    request_type: str
    status: str
    outcome: str | None
    secret_hash: str | None
    requested_at: datetime
    due_at: datetime
    processed_at: datetime | None
    verified_at: datetime | None
    export_path: str | None
    export_expires_at: datetime | None
    export_downloaded_at: datetime | None


@dataclass(frozen=True)
class Code:
    """A request's stored code: its HMAC, the wrong tries so far, and whether it has expired."""

    code_hash: str
    attempts: int
    expired: bool


def lock_address(cur: db.Cursor, mailbox_proof: str) -> None:
    """Hold the inbox (its keyed HMAC, however the address was spelt) until the transaction ends: requests for one address are
    counted and filed one at a time. A row lock only the privacy API's login may take (sql/030),
    no longer an advisory key any login could hold; the wait is bounded by the caller's timeouts."""
    cur.execute("SELECT privacy_api_lock_address(%s)", (mailbox_proof,))


def recent_requests(cur: db.Cursor, mailbox_proof: str) -> tuple[int, float]:
    """Requests mailed to this inbox (gdpr.email_address.mailbox, however the address was
    spelt) in the last hour, and the seconds until the oldest of them is an hour old."""
    cur.execute(
        "SELECT count(*), coalesce(extract(epoch FROM min(requested_at) + interval '1 hour' - now()), 0)::float8"
        " FROM privacy_requests WHERE mailbox_hmac = %s AND requested_at > now() - interval '1 hour'",
        (mailbox_proof,),
    )
    count, wait = cur.fetchone() or (0, 0.0)
    return int(count), float(wait)


def insert_request(cur: db.Cursor, new: NewRequest, proof: str, mailbox_proof: str, secret_hash: str) -> Request:
    """File the request, unverified (the trigger audits it 'received' and sets its due date)."""
    cur.execute(
        sql.SQL(
            "INSERT INTO privacy_requests"
            " (email, email_hmac, mailbox_hmac, request_type, status, channel, corrections, secret_hash)"
            " VALUES (%s, %s, %s, %s, 'unverified', 'api', %s, %s) RETURNING {}"
        ).format(_COLUMNS),
        (
            new.email,
            proof,
            mailbox_proof,
            new.request_type,
            None if new.corrections is None else Json(new.corrections),
            secret_hash,
        ),
    )
    return Request(*_one(cur))


def insert_code(cur: db.Cursor, request_id: int, code_hash: str, ttl_s: int) -> datetime:
    """Store the code's HMAC, valid ``ttl_s`` seconds; return when it expires."""
    cur.execute(
        "INSERT INTO privacy_verifications (request_id, code_hash, expires_at)"
        " VALUES (%s, %s, now() + make_interval(secs => %s)) RETURNING expires_at",
        (request_id, code_hash, ttl_s),
    )
    expires_at: datetime = _one(cur)[0]
    return expires_at


def find(cur: db.Cursor, request_id: int, *, lock: bool = False) -> Request | None:
    """The request, locked until the transaction ends when ``lock``."""
    cur.execute(
        sql.SQL("SELECT {} FROM privacy_requests WHERE id = %s{}").format(_COLUMNS, sql.SQL(" FOR UPDATE" if lock else "")),
        (request_id,),
    )
    row = cur.fetchone()
    return None if row is None else Request(*row)


def code_of(cur: db.Cursor, request_id: int) -> Code | None:
    cur.execute(
        "SELECT code_hash, attempts, expires_at <= now() FROM privacy_verifications WHERE request_id = %s FOR UPDATE",
        (request_id,),
    )
    row = cur.fetchone()
    return None if row is None else Code(*row)


def count_wrong_code(cur: db.Cursor, request_id: int) -> int:
    """One more wrong try; return the tries so far."""
    cur.execute(
        "UPDATE privacy_verifications SET attempts = attempts + 1 WHERE request_id = %s RETURNING attempts", (request_id,)
    )
    attempts: int = _one(cur)[0]
    return attempts


def mark_verified(cur: db.Cursor, request_id: int) -> None:
    """The code came back: the request is pending, and the processor is woken (--watch)."""
    cur.execute("UPDATE privacy_requests SET status = 'pending', verified_at = now() WHERE id = %s", (request_id,))
    cur.execute("SELECT pg_notify('privacy_requests', '')")


def mark_expired(cur: db.Cursor, request_id: int, outcome: str) -> None:
    """The code was never confirmed: the request ends, and the address and any corrections go
    (the keyed HMAC filed with it stays, for proof)."""
    cur.execute(
        "UPDATE privacy_requests SET status = 'expired', email = NULL, corrections = NULL, outcome = %s, processed_at = now()"
        " WHERE id = %s",
        (outcome, request_id),
    )


def mark_downloaded(cur: db.Cursor, request_id: int) -> None:
    """The export was handed over and its file deleted: nothing points at it any more."""
    cur.execute("UPDATE privacy_requests SET export_downloaded_at = now(), export_path = NULL WHERE id = %s", (request_id,))


def forget_export(cur: db.Cursor, request_id: int) -> None:
    """The export's file was deleted unread (its download period ended)."""
    cur.execute("UPDATE privacy_requests SET export_path = NULL WHERE id = %s", (request_id,))


def _one(cur: db.Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return tuple(row)
