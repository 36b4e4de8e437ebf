"""What the GDPR processor tidies before each run (and on every sweep of ``--watch``).

* An erasure put ``on_hold`` by a legal hold goes back to ``pending`` once no hold on the person
  is active any more (released by a DPO, or its ``until`` has passed), and is then processed.
* A request filed through the API whose code was never confirmed before it expired ends
  ``expired``: its email is removed, the keyed HMAC of what was asked is kept.
* An access export not downloaded before ``export_expires_at`` is deleted.
* The code of a request that is no longer waiting for it (verified, denied, expired: by the API,
  a DPO or this sweep) is deleted: only its hash was kept, but nothing needs it any more.
"""

from __future__ import annotations

import logging
from collections import Counter

import psycopg2.extensions

from core import db
from gdpr.audit import AuditLog
from gdpr.email_address import InvalidEmail, email_hmac, normalise
from gdpr.exports import remove_export

logger = logging.getLogger(__name__)

# An API request whose code row is missing (the mail failed half-way) expires after this.
UNVERIFIED_GRACE = "1 day"
ACTIVE_HOLD = "released_at IS NULL AND (until IS NULL OR until > now())"


def active_holds(cur: db.Cursor, proofs: list[str]) -> dict[str, int]:
    """The people (email proofs) among these under an active legal hold: proof -> hold id."""
    if not proofs:
        return {}
    cur.execute(
        f"SELECT DISTINCT ON (email_hmac) email_hmac, id FROM legal_holds WHERE email_hmac = ANY(%s) AND {ACTIVE_HOLD}"  # noqa: S608 - a constant
        " ORDER BY email_hmac, id",
        (proofs,),
    )
    return {proof: int(hold_id) for proof, hold_id in cur.fetchall()}


def release_ended_holds(cur: db.Cursor, audit: AuditLog) -> int:
    """Erasures on hold whose person has no active hold any more go back to pending."""
    cur.execute(
        "UPDATE privacy_requests AS r SET status = 'pending' WHERE status = 'on_hold' AND NOT EXISTS ("
        " SELECT FROM legal_holds AS h WHERE h.email_hmac = r.email_hmac"
        " AND h.released_at IS NULL AND (h.until IS NULL OR h.until > now()))"
        " RETURNING id"
    )
    released = [int(row[0]) for row in cur.fetchall()]
    for request_id in released:
        audit.add(request_id, "hold_released", {"reason": "no legal hold on the person is active any more"})
    return len(released)


def expire_unverified(cur: db.Cursor, key: bytes, audit: AuditLog) -> int:
    """API requests whose code expired unconfirmed end ``expired``; the email goes."""
    cur.execute(
        "SELECT r.id, r.email FROM privacy_requests AS r LEFT JOIN privacy_verifications AS v ON v.request_id = r.id"
        " WHERE r.status = 'unverified' AND (v.expires_at < now()"
        " OR (v.request_id IS NULL AND r.requested_at < now() - %s::interval))"
        " ORDER BY r.id FOR UPDATE OF r SKIP LOCKED",
        (UNVERIFIED_GRACE,),
    )
    rows = cur.fetchall()
    for request_id, email in rows:
        try:
            asked = normalise(email)
        except InvalidEmail:
            asked = email
        cur.execute(
            "UPDATE privacy_requests SET status = 'expired', email = NULL, corrections = NULL, email_hmac = %s,"
            " outcome = 'the emailed code was not confirmed in time', processed_at = now() WHERE id = %s",
            (None if asked is None else email_hmac(key, asked), request_id),
        )
        audit.add(request_id, "expired", {"reason": "the emailed code was not confirmed in time"})
    return len(rows)


def delete_expired_exports(cur: db.Cursor, audit: AuditLog) -> int:
    """Access exports past their expiry are deleted, downloaded or not."""
    cur.execute(
        "SELECT id, export_path FROM privacy_requests WHERE export_path IS NOT NULL AND export_expires_at < now()"
        " FOR UPDATE SKIP LOCKED"
    )
    rows = cur.fetchall()
    for request_id, path in rows:
        removed = remove_export(path)
        audit.add(request_id, "export_deleted", {"reason": "the download period ended", "file_removed": removed})
    if rows:
        cur.execute("UPDATE privacy_requests SET export_path = NULL WHERE id = ANY(%s)", ([r[0] for r in rows],))
    return len(rows)


def forget_used_codes(cur: db.Cursor) -> int:
    """Delete the verification codes of requests no longer ``unverified``."""
    cur.execute(
        "DELETE FROM privacy_verifications AS v USING privacy_requests AS r"
        " WHERE r.id = v.request_id AND r.status <> 'unverified'"
    )
    return int(cur.rowcount)


def tidy(conn: psycopg2.extensions.connection, key: bytes) -> Counter[str]:
    """All of the above in one transaction; return what was done."""
    done: Counter[str] = Counter()
    with conn, conn.cursor() as cur:
        audit = AuditLog()
        done["holds released"] = release_ended_holds(cur, audit)
        done["unverified expired"] = expire_unverified(cur, key, audit)
        done["exports expired"] = delete_expired_exports(cur, audit)
        done["used codes deleted"] = forget_used_codes(cur)
        audit.write(cur)
        if done["holds released"]:
            cur.execute("SELECT pg_notify('privacy_requests', '')")
    for what, n in done.items():
        if n:
            logger.info("%s: %d", what, n)
    return +done
