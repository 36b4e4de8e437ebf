"""Process pending ``privacy_requests``: erase the person's PII and record the outcome.

For each pending erasure request: find the user by email (case-insensitively), set email,
full_name and address to NULL in ``users_pii``, mark the user erased in ``users_public`` (the
generator stops sending their events), and close the request as ``completed``. A request whose
email matches nobody is closed as ``not_found``; one without a valid email as ``rejected``. The
requester's email is not kept: only a keyed HMAC of the normalised address, for proof. Several
processors can run at once: each request is locked with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import re
from collections import Counter

import psycopg2.extensions

from core import cli, db
from core.config import Settings

logger = logging.getLogger(__name__)

# Requests handled per transaction: a crash re-does at most this many, and they are idempotent.
BATCH = 200
MAX_EMAIL_LENGTH = 254  # RFC 5321
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(raw: str | None) -> str | None:
    """Lower-cased, trimmed email, or None when it is not a plausible address."""
    if raw is None:
        return None
    email = raw.strip().lower()
    if not email or len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        return None
    return email


def email_hmac(key: bytes, email: str) -> str:
    """Keyed hash of a normalised email: proves which address a request was about, reveals nothing."""
    return hmac.new(key, email.encode("utf-8"), hashlib.sha256).hexdigest()


def erase(cur: psycopg2.extensions.cursor, email: str) -> int:
    """Null the PII of the user with this email; return how many users were erased (0 or 1)."""
    cur.execute(
        "UPDATE users_pii SET email = NULL, full_name = NULL, address = NULL, anonymized_at = now()"
        " WHERE lower(email) = %s RETURNING user_id",
        (email,),
    )
    user_ids = [row[0] for row in cur.fetchall()]
    if user_ids:
        cur.execute("UPDATE users_public SET is_erased = true WHERE user_id = ANY(%s)", (user_ids,))
    return len(user_ids)


def process_batch(conn: psycopg2.extensions.connection, key: bytes) -> Counter[str]:
    """Lock up to BATCH pending requests, process them and commit; return counts by status."""
    outcomes: Counter[str] = Counter()
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT request_id, email FROM privacy_requests WHERE status = 'pending'"
            " ORDER BY requested_at, request_id LIMIT %s FOR UPDATE SKIP LOCKED",
            (BATCH,),
        )
        for request_id, raw_email in cur.fetchall():
            email = normalise_email(raw_email)
            if email is None:
                status, outcome, proof = "rejected", "invalid email address", None
            elif erase(cur, email):
                status, outcome, proof = "completed", "personal data erased", email_hmac(key, email)
            else:
                status, outcome, proof = "not_found", "no user with this email", email_hmac(key, email)
            cur.execute(
                "UPDATE privacy_requests SET status = %s, outcome = %s, email = NULL, email_hmac = %s,"
                " processed_at = now() WHERE request_id = %s",
                (status, outcome, proof, request_id),
            )
            logger.info("privacy request %d: %s", request_id, status)
            outcomes[status] += 1
    return outcomes


def process_pending(settings: Settings) -> Counter[str]:
    """Process every pending request; return counts by resulting status."""
    total: Counter[str] = Counter()
    with db.connection(settings.database, application_name="gdpr_processor") as conn:
        while True:
            outcomes = process_batch(conn, settings.gdpr_hmac_key)
            if not outcomes:
                return total
            total.update(outcomes)


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m gdpr.process_privacy_requests",
        description="Process every pending row of privacy_requests (erasure): null the person's email, name "
        "and address, stop their events, and close the request as completed, not_found or rejected.",
    )


def main(argv: list[str] | None = None) -> None:
    build_parser().parse_args(argv)

    def execute(settings: Settings) -> int:
        outcomes = process_pending(settings)
        if not outcomes:
            print("privacy requests: none pending")
        else:
            detail = ", ".join(f"{status} {n}" for status, n in sorted(outcomes.items()))
            print(f"privacy requests: {sum(outcomes.values())} processed ({detail})")
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
