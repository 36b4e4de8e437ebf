"""Rectification (Art. 16), restriction (Art. 18) and objection (Art. 21): what the processor does.

* Rectification applies the corrected email, name or address to ``users_pii``. The request
  carries the new values in ``privacy_requests.corrections`` until it is handled; the audit
  trail records which fields changed, never a value.
* Restriction keeps the person's data but stops processing it: a withdrawal of analytics
  consent with source ``restriction`` (the consumers neither store nor count the person's later
  events, as for missing consent) and a row in ``processing_restrictions`` until a DPO lifts it
  (``gdpr.actions.lift_restriction``). Events before it stay stored and counted: nothing is
  excluded retroactively.
* Objection to analytics withdraws analytics consent (source ``objection``) for good; a new
  grant, from the person, is the only way back.

Both stop profiling at once: the person's RFM and lifetime-value rows are deleted in the
request's transaction, and the scoring scores nobody whose analytics consent is withdrawn
(``analytics.scoring.not_profiled``), so no later scoring brings them back while it lasts. Their
per-person-day summaries stay, as their events do, and count in the aggregates as before.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg2.errors
from psycopg2 import sql

from analytics import scores
from core import consent, db
from gdpr.email_address import InvalidEmail, normalise

CORRECTABLE = ("email", "full_name", "address")
MAX_VALUE_LENGTH = 500
RESTRICTION_SOURCE = "restriction"
OBJECTION_SOURCE = "objection"


class InvalidCorrections(ValueError):
    """The corrections cannot be applied; the message never quotes a value."""


def parse_corrections(raw: object) -> dict[str, str]:
    """The corrected values of a rectification, checked: only the correctable fields, each a
    non-empty printable string of bounded length, an email that is a mailbox (normalised)."""
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidCorrections("no corrections given: name at least one of email, full_name, address")
    unknown = sorted(str(key) for key in raw if key not in CORRECTABLE)
    if unknown:
        raise InvalidCorrections(f"only {', '.join(CORRECTABLE)} can be corrected")
    values: dict[str, str] = {}
    for field, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            raise InvalidCorrections(f"the corrected {field} must be a non-empty text")
        text = value.strip()
        if len(text) > MAX_VALUE_LENGTH or not text.isprintable():
            raise InvalidCorrections(f"the corrected {field} is longer than {MAX_VALUE_LENGTH} characters or not printable")
        if field == "email":
            try:
                text = normalise(text)
            except InvalidEmail as e:
                raise InvalidCorrections(f"the corrected email is not usable: {e}") from e
        values[str(field)] = text
    return values


def rectify(cur: db.Cursor, user_id: str, corrections: Mapping[str, str]) -> list[str]:
    """Apply the corrections to the person's ``users_pii`` row; return the fields whose value
    changed (sorted). InvalidCorrections, with nothing changed, when the corrected email is
    another account's."""
    fields = [field for field in CORRECTABLE if field in corrections]
    cur.execute(
        sql.SQL("SELECT {} FROM users_pii WHERE user_id = %s").format(sql.SQL(", ").join(map(sql.Identifier, fields))),
        (user_id,),
    )
    row = cur.fetchone()
    if row is None:
        return []
    changed = [field for field, old in zip(fields, row, strict=True) if old != corrections[field]]
    if not changed:
        return []
    cur.execute("SAVEPOINT rectify")
    try:
        cur.execute(
            sql.SQL("UPDATE users_pii SET {} WHERE user_id = %s").format(
                sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(field)) for field in changed)
            ),
            [*(corrections[field] for field in changed), user_id],
        )
    except psycopg2.errors.UniqueViolation as e:
        cur.execute("ROLLBACK TO SAVEPOINT rectify")
        raise InvalidCorrections("the corrected email is already used by another account") from e
    cur.execute("RELEASE SAVEPOINT rectify")
    return sorted(changed)


def restrict(cur: db.Cursor, request_id: int, user_id: str) -> int:
    """Stop processing the person's data from now on, until the restriction is lifted; their
    scores go. Return the score rows deleted."""
    cur.execute(
        "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, %s, false, %s)",
        (user_id, consent.ANALYTICS, RESTRICTION_SOURCE),
    )
    cur.execute(
        "INSERT INTO processing_restrictions (request_id, user_id) VALUES (%s, %s) ON CONFLICT (request_id) DO NOTHING",
        (request_id, user_id),
    )
    return scores.remove_people(cur, [user_id])


def object_to_analytics(cur: db.Cursor, user_id: str) -> int:
    """The person objects to analytics: their analytics consent is withdrawn from now on and
    their scores go. Return the score rows deleted."""
    cur.execute(
        "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, %s, false, %s)",
        (user_id, consent.ANALYTICS, OBJECTION_SOURCE),
    )
    return scores.remove_people(cur, [user_id])
