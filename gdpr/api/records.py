"""The API's statements on ``privacy_verifications`` and its lock on an inbox (those on
``privacy_requests`` are gdpr.requests'). Every value is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import db


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


def insert_code(cur: db.Cursor, request_id: int, code_hash: str, ttl_s: int) -> datetime:
    """Store the code's HMAC, valid ``ttl_s`` seconds; return when it expires."""
    cur.execute(
        "INSERT INTO privacy_verifications (request_id, code_hash, expires_at)"
        " VALUES (%s, %s, now() + make_interval(secs => %s)) RETURNING expires_at",
        (request_id, code_hash, ttl_s),
    )
    expires_at: datetime = _one(cur)[0]
    return expires_at


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


def _one(cur: db.Cursor) -> tuple[Any, ...]:
    row = cur.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return tuple(row)
