"""What a data protection officer (DPO) decides about a privacy request, one function per action.

* ``verify_manually``: the DPO checked the requester's identity another way (a letter, a call);
  the request leaves ``unverified`` and the processor takes it.
* ``deny``: a manifestly unfounded or excessive request is refused with a reason (Art. 12(5));
  the email goes, its keyed HMAC stays for proof, as after any other outcome.
* ``extend``: the deadline moves by one or two months past the original one, with a reason
  (Art. 12(3)); decided within the first month, as the requester must be told within it.
* ``place_hold`` / ``place_hold_for_email`` / ``release_hold``: a legal hold on a person keeps
  their erasure waiting (``on_hold``; the deadline still runs) until it is released or its
  ``until`` passes (the processor's housekeeping releases those).
* ``lift_restriction``: a restriction of processing (Art. 18) ends and the person's analytics
  consent is what it was before it.

Every function works in the caller's transaction (the caller commits), locks the rows it
changes, checks what it is asked before changing anything and raises ``ActionRefused`` (a
``ValueError``) without side effects when the action is impossible: an unknown request, a wrong
status, a reason that is empty or too long. Each writes its audit entry with the actor
``dpo:<username>``; details hold the DPO's reason and ids, never personal data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2.errors

from core import consent, db
from gdpr.audit import AuditLog
from gdpr.email_address import InvalidEmail, email_hmac, normalise
from gdpr.housekeeping import ACTIVE_HOLD
from gdpr.rights import RESTRICTION_SOURCE

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("unverified", "pending", "on_hold")
MAX_REASON_LENGTH = 500  # the legal_holds CHECK; a reason is a sentence, not a file
MAX_EXTENSION_MONTHS = 2  # Art. 12(3): "by two further months where necessary"
# A hold is for litigation or an investigation: years, not centuries (a typo in a year).
MAX_HOLD_YEARS = 10
LIFTED_SOURCE = "restriction_lifted"
NOTIFY_PROCESSOR = "SELECT pg_notify('privacy_requests', '')"
LOCK_WAIT_MS = 5000


class ActionRefused(ValueError):
    """The action cannot be taken; the message says why and what to do. Nothing was changed."""


class UnknownRequest(ActionRefused):
    """No privacy request has this id."""


class InvalidArgument(ActionRefused):
    """A reason, a number of months or a date that the action cannot take."""


@dataclass(frozen=True)
class HoldPlaced:
    hold_id: int
    held_requests: list[int]  # the requests now on_hold


@dataclass(frozen=True)
class HoldReleased:
    hold_ids: list[int]
    resumed_requests: list[int]  # the requests back to pending


def actor(username: str) -> str:
    """The audit trail's name of a DPO."""
    if not username or not username.isprintable() or len(username) > 40:
        raise InvalidArgument("the DPO's username must be 1-40 printable characters")
    return f"dpo:{username}"


def check_reason(reason: str | None) -> str:
    """The reason, trimmed: 1-500 printable characters on one line (InvalidArgument otherwise)."""
    text = (reason or "").strip()
    if not text:
        raise InvalidArgument("give a reason: it goes to the audit trail and the requester is told it")
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidArgument(f"the reason has {len(text)} characters; at most {MAX_REASON_LENGTH} are kept, shorten it")
    if not text.isprintable():
        raise InvalidArgument("the reason contains line breaks or control characters: write it on one line")
    return text


def check_months(months: int) -> int:
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_EXTENSION_MONTHS:
        raise InvalidArgument(f"a deadline is extended by 1 or {MAX_EXTENSION_MONTHS} months (Art. 12(3)), not {months!r}")
    return months


def check_until(until: datetime | None, now: datetime | None = None) -> datetime | None:
    """The end of a hold: None (until released) or a timezone-aware instant in the future,
    at most MAX_HOLD_YEARS ahead."""
    if until is None:
        return None
    if until.tzinfo is None:
        raise InvalidArgument("the end of a hold needs a time zone (UTC): e.g. 2027-01-31 or 2027-01-31T00:00:00+00:00")
    current = now or datetime.now(UTC)
    if until <= current:
        raise InvalidArgument(f"the hold would end at {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC, which has passed")
    if until > current + timedelta(days=366 * MAX_HOLD_YEARS):
        raise InvalidArgument(f"a hold may last at most {MAX_HOLD_YEARS} years; release it earlier or place a new one")
    return until.astimezone(UTC)


def proof_of(key: bytes, email: str) -> str:
    """The proof the processor keeps for an address: the HMAC of its match key, or of the raw
    text when it is not a mailbox (so the same text is matched again)."""
    try:
        return email_hmac(key, normalise(email))
    except InvalidEmail:
        return email_hmac(key, email)


@dataclass(frozen=True)
class _Request:
    id: int
    request_type: str
    status: str
    email: str | None
    email_hmac: str | None

    def proof(self, key: bytes) -> str | None:
        if self.email_hmac is not None:
            return self.email_hmac
        return None if self.email is None else proof_of(key, self.email)


def _lock(cur: db.Cursor, request_id: int) -> _Request:
    """The request, locked until the transaction ends (the processor skips locked requests)."""
    if isinstance(request_id, bool) or not isinstance(request_id, int) or not 1 <= request_id < 2**63:
        raise UnknownRequest(f"no privacy request {request_id!r}: ids are positive whole numbers")
    # The processor holds a request's lock while it answers it (seconds for a large erasure): wait
    # that long, not the statement timeout, then tell the DPO to look again.
    cur.execute("SET LOCAL lock_timeout = %s", (f"{LOCK_WAIT_MS}ms",))
    try:
        cur.execute(
            "SELECT id, request_type, status, email, email_hmac FROM privacy_requests WHERE id = %s FOR UPDATE", (request_id,)
        )
    except psycopg2.errors.LockNotAvailable as e:
        raise ActionRefused(
            f"request {request_id} is being processed right now: reload its page in a moment and check its status"
        ) from e
    row = cur.fetchone()
    cur.execute("RESET lock_timeout")
    if row is None:
        raise UnknownRequest(f"no privacy request {request_id}")
    return _Request(int(row[0]), row[1], row[2], row[3], row[4])


def _lock_open(cur: db.Cursor, request_id: int, what: str) -> _Request:
    request = _lock(cur, request_id)
    if request.status not in OPEN_STATUSES:
        raise ActionRefused(
            f"request {request_id} is {request.status}: only an open request ({', '.join(OPEN_STATUSES)}) can be {what}"
        )
    return request


def _audit(cur: db.Cursor, who: str, entries: list[tuple[int, str, dict[str, Any]]]) -> None:
    log = AuditLog(who)
    for request_id, action, details in entries:
        log.add(request_id, action, details)
    log.write(cur)


def verify_manually(cur: db.Cursor, request_id: int, username: str) -> None:
    """The DPO verified the requester another way: ``unverified`` -> ``pending``."""
    who = actor(username)
    request = _lock(cur, request_id)
    if request.status != "unverified":
        raise ActionRefused(f"request {request_id} is {request.status}: only an unverified request needs verifying")
    cur.execute("UPDATE privacy_requests SET status = 'pending', verified_at = now() WHERE id = %s", (request_id,))
    _audit(cur, who, [(request_id, "verified", {"method": "manual"})])
    cur.execute(NOTIFY_PROCESSOR)


def deny(cur: db.Cursor, request_id: int, username: str, reason: str, hmac_key: bytes) -> None:
    """Refuse an open request as manifestly unfounded or excessive (Art. 12(5)): ``denied``,
    the outcome says why, the email and any corrections go, the proof stays."""
    who, text = actor(username), check_reason(reason)
    request = _lock_open(cur, request_id, "denied")
    cur.execute(
        "UPDATE privacy_requests SET status = 'denied', outcome = %s, processed_at = now(), email = NULL,"
        " corrections = NULL, email_hmac = %s WHERE id = %s",
        (f"denied: {text}", request.proof(hmac_key), request_id),
    )
    _audit(cur, who, [(request_id, "denied", {"reason": text})])


def extend(cur: db.Cursor, request_id: int, username: str, months: int, reason: str) -> datetime:
    """Move an open request's deadline to ``months`` (1 or 2) months after the original one;
    return the new deadline. Refused once the original deadline has passed (the requester must
    be told within the first month) and when it would not move the deadline later."""
    who, count, text = actor(username), check_months(months), check_reason(reason)
    _lock_open(cur, request_id, "extended")
    cur.execute(
        "SELECT due_at, coalesce(original_due_at, due_at), coalesce(original_due_at, due_at) + make_interval(months => %s),"
        " coalesce(original_due_at, due_at) < now() FROM privacy_requests WHERE id = %s",
        (count, request_id),
    )
    row = cur.fetchone()
    assert row is not None  # noqa: S101 - locked above
    due, original, passed = row[0], row[1], row[3]
    new_due: datetime = row[2]
    if passed:
        raise ActionRefused(
            f"request {request_id}'s original deadline ({original:%Y-%m-%d}) has passed: an extension must be decided and "
            "told to the requester within the first month (Art. 12(3))"
        )
    if new_due <= due:
        raise ActionRefused(
            f"request {request_id} is already due {due:%Y-%m-%d}; {count} month(s) after the original deadline would not "
            f"move it later (at most {MAX_EXTENSION_MONTHS} months in all)"
        )
    cur.execute("UPDATE privacy_requests SET due_at = %s WHERE id = %s", (new_due, request_id))
    _audit(cur, who, [(request_id, "extended", {"months": count, "reason": text, "due_at": new_due.isoformat()})])
    return new_due


def _hold_person(
    cur: db.Cursor, proof: str, who: str, text: str, *, until: datetime | None, hmac_key: bytes, acted_on: int | None
) -> HoldPlaced:
    """Insert the hold and put the person's pending erasures on hold; audit each of them."""
    cur.execute(
        "INSERT INTO legal_holds (email_hmac, reason, placed_by, until) VALUES (%s, %s, %s, %s) RETURNING id",
        (proof, text, who, until),
    )
    row = cur.fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING
    hold_id = int(row[0])
    held = [request_id for request_id, status in _open_erasures(cur, proof, hmac_key) if status == "pending"]
    if held:
        cur.execute("UPDATE privacy_requests SET status = 'on_hold', email_hmac = %s WHERE id = ANY(%s)", (proof, held))
    details = {"hold_id": hold_id, "until": None if until is None else until.isoformat(), "reason": text}
    audited = sorted({*held, *([] if acted_on is None else [acted_on])})
    _audit(cur, who, [(request_id, "held", details) for request_id in audited])
    return HoldPlaced(hold_id, held)


def _open_erasures(cur: db.Cursor, proof: str, hmac_key: bytes) -> list[tuple[int, str]]:
    """The person's open erasure requests, locked: by their proof, or by their email where no
    proof is stored yet (computed here: the queue of open requests is short)."""
    cur.execute(
        "SELECT id, status, email, email_hmac FROM privacy_requests WHERE request_type = 'erasure'"
        " AND status IN ('unverified', 'pending', 'on_hold') AND (email_hmac = %s OR (email_hmac IS NULL AND email IS NOT NULL))"
        " ORDER BY id FOR UPDATE",
        (proof,),
    )
    return [
        (int(request_id), status)
        for request_id, status, email, stored in cur.fetchall()
        if (stored if stored is not None else proof_of(hmac_key, email)) == proof
    ]


def place_hold(
    cur: db.Cursor, request_id: int, username: str, reason: str, *, until: datetime | None, hmac_key: bytes
) -> HoldPlaced:
    """A legal hold on the person of this request: their pending erasures wait ``on_hold`` until
    the hold is released or ``until`` passes; later erasures wait too (the processor checks)."""
    who, text, end = actor(username), check_reason(reason), check_until(until)
    request = _lock(cur, request_id)
    proof = request.proof(hmac_key)
    if proof is None:
        raise ActionRefused(f"request {request_id} names nobody (no email, no proof): there is no person to hold")
    return _hold_person(cur, proof, who, text, until=end, hmac_key=hmac_key, acted_on=request_id)


def place_hold_for_email(
    cur: db.Cursor, email: str, username: str, reason: str, *, until: datetime | None, hmac_key: bytes
) -> HoldPlaced:
    """A legal hold on the person with this address, who may have filed no request yet. The
    hold's own row records who placed it and why; the audit trail (one entry per request) gets
    an entry for each erasure put on hold."""
    who, text, end = actor(username), check_reason(reason), check_until(until)
    try:
        key = normalise(email)
    except InvalidEmail as e:
        raise InvalidArgument(f"cannot hold this address: {e}") from e
    return _hold_person(cur, email_hmac(hmac_key, key), who, text, until=end, hmac_key=hmac_key, acted_on=None)


def release_hold(cur: db.Cursor, request_id: int, username: str, hmac_key: bytes) -> HoldReleased:
    """Release every unreleased hold on the person of this request; their erasures on hold go
    back to ``pending`` and the processor is woken."""
    who = actor(username)
    request = _lock(cur, request_id)
    proof = request.proof(hmac_key)
    if proof is None:
        raise ActionRefused(f"request {request_id} names nobody (no email, no proof): there is no hold to release")
    cur.execute(
        "UPDATE legal_holds SET released_at = now(), released_by = %s WHERE email_hmac = %s AND released_at IS NULL RETURNING id",
        (who, proof),
    )
    hold_ids = sorted(int(row[0]) for row in cur.fetchall())
    if not hold_ids:
        raise ActionRefused(f"the person of request {request_id} is under no legal hold: there is nothing to release")
    cur.execute(
        "UPDATE privacy_requests SET status = 'pending' WHERE status = 'on_hold' AND email_hmac = %s RETURNING id", (proof,)
    )
    resumed = sorted(int(row[0]) for row in cur.fetchall())
    details = {"hold_ids": hold_ids}
    _audit(cur, who, [(rid, "hold_released", details) for rid in sorted({*resumed, request_id})])
    cur.execute(NOTIFY_PROCESSOR)
    return HoldReleased(hold_ids, resumed)


def active_hold_ids(cur: db.Cursor, proof: str) -> list[int]:
    """The person's holds in force (not released, ``until`` not passed)."""
    cur.execute(f"SELECT id FROM legal_holds WHERE email_hmac = %s AND {ACTIVE_HOLD} ORDER BY id", (proof,))  # noqa: S608 - a constant
    return [int(row[0]) for row in cur.fetchall()]


def lift_restriction(cur: db.Cursor, request_id: int, username: str, consent_mode: str) -> bool:
    """End the restriction of processing this completed request put in place, and give the
    person back the analytics consent they had before it; return whether consent was granted
    again. Nothing is granted when the person recorded a newer choice during the restriction
    (or was erased: the erasure's withdrawal is newer), when another restriction of theirs is
    still in force, or when they had withdrawn consent before it. With no record before it, a
    grant is recorded only in CONSENT_MODE=assumed (where no record counted as consent)."""
    who = actor(username)
    request = _lock(cur, request_id)
    if request.request_type != "restriction" or request.status != "completed":
        raise ActionRefused(
            f"request {request_id} is a {request.status} {request.request_type} request: "
            "only a completed restriction can be lifted"
        )
    cur.execute(
        "SELECT user_id::text, since FROM processing_restrictions WHERE request_id = %s AND lifted_at IS NULL FOR UPDATE",
        (request_id,),
    )
    row = cur.fetchone()
    if row is None:
        raise ActionRefused(f"request {request_id}'s restriction is not in force (already lifted, or never applied)")
    user_id, since = row
    restore = _consent_before(cur, user_id, since, consent_mode)
    cur.execute("UPDATE processing_restrictions SET lifted_at = now(), lifted_by = %s WHERE request_id = %s", (who, request_id))
    if restore:
        cur.execute(
            "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, %s, true, %s)",
            (user_id, consent.ANALYTICS, LIFTED_SOURCE),
        )
    _audit(cur, who, [(request_id, "restriction_lifted", {"consent_restored": restore})])
    return restore


def _consent_before(cur: db.Cursor, user_id: str, since: datetime, consent_mode: str) -> bool:
    """Whether lifting a restriction of ``user_id`` from ``since`` grants analytics consent again."""
    cur.execute("SELECT count(*) FROM processing_restrictions WHERE user_id = %s AND lifted_at IS NULL", (user_id,))
    row = cur.fetchone()
    if row is not None and row[0] > 1:
        return False  # another restriction of the person is still in force
    cur.execute(
        "SELECT source FROM consent_ledger WHERE user_id = %s AND purpose = %s ORDER BY effective_at DESC, id DESC LIMIT 1",
        (user_id, consent.ANALYTICS),
    )
    latest = cur.fetchone()
    if latest is None or latest[0] != RESTRICTION_SOURCE:
        return False  # a newer choice of the person (or an erasure) stands
    cur.execute(
        "SELECT granted FROM consent_ledger WHERE user_id = %s AND purpose = %s AND effective_at < %s"
        " AND source <> %s ORDER BY effective_at DESC, id DESC LIMIT 1",
        (user_id, consent.ANALYTICS, since, RESTRICTION_SOURCE),
    )
    before = cur.fetchone()
    if before is None:
        return consent_mode == "assumed"
    return bool(before[0])


def is_active_dpo(cur: db.Cursor, username: str) -> bool:
    """Whether a DPO account of this name exists and is not disabled (the actors the trail accepts)."""
    cur.execute("SELECT 1 FROM dpo_accounts WHERE username = %s AND disabled_at IS NULL", (username,))
    return cur.fetchone() is not None
