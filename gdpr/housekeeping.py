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
from gdpr import requests
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
    released = requests.resume_released_holds(cur)
    for request_id in released:
        audit.add(request_id, "hold_released", {"reason": "no legal hold on the person is active any more"})
    return len(released)


def expire_unverified(cur: db.Cursor, key: bytes, audit: AuditLog) -> int:
    """API requests whose code expired unconfirmed end ``expired``; the email goes."""
    rows = requests.lock_unconfirmed(cur, UNVERIFIED_GRACE)
    for request_id, email in rows:
        asked: str | None
        try:
            asked = normalise(email)
        except InvalidEmail:
            asked = email
        requests.expire_unconfirmed(cur, request_id, None if asked is None else email_hmac(key, asked))
        audit.add(request_id, "expired", {"reason": "the emailed code was not confirmed in time"})
    return len(rows)


def delete_expired_exports(cur: db.Cursor, audit: AuditLog) -> int:
    """Access exports past their expiry are deleted, downloaded or not."""
    rows = requests.lock_expired_exports(cur)
    for request_id, path in rows:
        removed = remove_export(path)
        audit.add(request_id, "export_deleted", {"reason": "the download period ended", "file_removed": removed})
    if rows:
        requests.forget_exports(cur, [r[0] for r in rows])
    return len(rows)


def forget_used_codes(cur: db.Cursor) -> int:
    """Delete the verification codes of requests no longer ``unverified``."""
    return requests.delete_used_codes(cur)


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
            requests.notify_processor(cur)
    for what, n in done.items():
        if n:
            logger.info("%s: %d", what, n)
    return +done
