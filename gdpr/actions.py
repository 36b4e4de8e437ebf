"""What a data protection officer (DPO) decides about a privacy request, one function per action.

* ``verify_manually``: the DPO checked the requester's identity another way (a letter, a call);
  the request leaves ``unverified`` and the processor takes it.
* ``deny``: a manifestly unfounded or excessive request is refused with a reason (Art. 12(5));
  the email goes, its keyed HMAC stays for proof, as after any other outcome.
* ``extend``: the deadline moves by one or two months past the original one, with a reason
  (Art. 12(3)); decided within the first month, as the requester must be told within it.
* ``place_hold`` / ``place_hold_for_email``: a legal hold on a person keeps their erasure
  waiting (``on_hold``; the deadline still runs) until it is released or its ``until`` passes
  (the processor's housekeeping resumes those).
* ``release_hold`` / ``release_only_hold``: one hold ends, by its id; the person's erasures
  resume only when no other hold on them is active.
* ``lift_restriction``: a restriction of processing (Art. 18) ends and the person's analytics
  consent is what it was before it.
* ``set_budget``: a privacy budget (epsilon per period) for an analyst, the daily report or all
  analysts together (analytics.ledger); audited with request id 0, no request's (sql/049).

Every function works in the caller's transaction (the caller commits), locks the rows it
changes, checks what it is asked before changing anything and raises ``ActionRefused`` (a
``ValueError``) without side effects when the action is impossible: an unknown request, a wrong
status, a reason that is empty or too long. Each writes its audit entry with the actor
``dpo:<username>``; details hold the DPO's reason and ids, never personal data.

Locks: each action first sets ``lock_timeout`` for its transaction (LOCK_WAIT_MS), so it never
waits long for a row the processor holds; it waits only for the first row it locks (the request
acted on), and takes the person's other rows afterwards in id order with NOWAIT, so it never
waits for a row while holding one (and cannot close a cycle with the processor, which locks its
batch first and the person's access requests after). A lock it cannot get at once, or a
deadlock PostgreSQL breaks, is ``RequestBusy``: nothing was changed, try again in a moment.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg2.errors

from analytics import analysts, ledger
from core import consent, db
from gdpr import requests
from gdpr.audit import AuditLog
from gdpr.email_address import InvalidEmail, email_hmac, normalise
from gdpr.housekeeping import ACTIVE_HOLD
from gdpr.requests import OPEN_STATUSES, RequestType, Status
from gdpr.rights import RESTRICTION_SOURCE

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

MAX_REASON_LENGTH = 500  # the legal_holds CHECK; a reason is a sentence, not a file
MAX_EXTENSION_MONTHS = 2  # Art. 12(3): "by two further months where necessary"
# A hold is for litigation or an investigation: years, not centuries (a typo in a year).
MAX_HOLD_YEARS = 10
LIFTED_SOURCE = "restriction_lifted"
# A budget above this is a typo, not a policy: the largest the platform itself needs is a year of
# daily reports at the largest REPORT_EPSILON (100 x 366) with room for the analysts beside it
# (public deployments spend 0.1 to 10 a year; the demo's report 365).
MAX_BUDGET_EPSILON = 100_000.0
NO_REQUEST = 0  # the request id of an audit entry that belongs to no request (a budget), sql/049
# The longest an action waits for a lock (the processor holds a request's lock while it answers
# it, seconds for a large erasure); then the DPO is told to try again.
LOCK_WAIT_MS = 5000
BUSY = (
    "the request (or another request of its person) is being processed right now: nothing was changed; "
    "reload its page in a moment, check its status and try again"
)


class ActionRefused(ValueError):
    """The action cannot be taken; the message says why and what to do. Nothing was changed."""


class UnknownRequest(ActionRefused):
    """No privacy request has this id."""


class InvalidArgument(ActionRefused):
    """A reason, a number of months, a date or a hold id that the action cannot take."""


class UnknownHold(InvalidArgument):
    """No legal hold has this id."""


class RequestBusy(ActionRefused):
    """A row the action needs is locked (by the processor, or another DPO's action) or PostgreSQL
    broke a deadlock: nothing was changed, and the same action may succeed in a moment."""


@dataclass(frozen=True)
class HoldPlaced:
    hold_id: int
    held_requests: list[int]  # the requests now on_hold


@dataclass(frozen=True)
class HoldReleased:
    hold_id: int
    resumed_requests: list[int]  # the requests back to pending (none while another hold is active)
    still_active: list[int]  # the person's other holds in force, which keep their erasures on hold


def action(work: Callable[Concatenate[db.Cursor, P], R]) -> Callable[Concatenate[db.Cursor, P], R]:
    """An action's transaction: every lock wait bounded by LOCK_WAIT_MS from its first statement
    (``SET LOCAL``: until the caller's commit or rollback); a lock not had in time (55P03) or a
    deadlock (40P01) becomes RequestBusy (the transaction is then aborted: the caller rolls back)."""

    @functools.wraps(work)
    def run(cur: db.Cursor, /, *args: P.args, **kwargs: P.kwargs) -> R:
        cur.execute("SET LOCAL lock_timeout = %s", (f"{LOCK_WAIT_MS}ms",))
        try:
            return work(cur, *args, **kwargs)
        except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected) as e:
            raise RequestBusy(BUSY) from e

    return run


@dataclass(frozen=True)
class Requester:
    """A person who filed through the API: told of a DPO's denial or extension once it commits
    (Art. 12(3) and 12(4)). An operator's SQL row has nobody to tell here."""

    email: str
    request_id: int
    request_type: str


def requester(cur: db.Cursor, request_id: int) -> Requester | None:
    """The API requester of ``request_id`` while their address is still held, else None. Read
    before a denial, which removes the address."""
    if not _valid_id(request_id):
        return None
    found = requests.requester(cur, request_id)
    return None if found is None else Requester(found[0], request_id, found[1])


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


def mailbox_proof(key: bytes, email: str) -> str:
    """The proof the processor keeps for a mailbox: the HMAC of the match key it matches a stored
    address by (``normalise(..., deliverable=False)``: a special-use domain such as ``.test`` or
    ``.invalid`` is accepted, as in an operator's request for a stored address); InvalidEmail for
    what is no mailbox. The one place the DPO's side computes a person's proof: a hold must carry
    the processor's proof, or it holds nobody."""
    return email_hmac(key, normalise(email, deliverable=False))


def proof_of(key: bytes, email: str) -> str:
    """The proof the processor keeps for an address: ``mailbox_proof``, or the HMAC of the raw
    text when it is not a mailbox (so the same text is matched again)."""
    try:
        return mailbox_proof(key, email)
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


def _valid_id(value: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 1 <= value < 2**63


def _lock(cur: db.Cursor, request_id: int) -> _Request:
    """The request, locked until the transaction ends (the processor skips locked requests): the
    one lock an action waits for (at most LOCK_WAIT_MS, see ``action``)."""
    if not _valid_id(request_id):
        raise UnknownRequest(f"no privacy request {request_id!r}: ids are positive whole numbers")
    row = requests.lock(cur, request_id)
    if row is None:
        raise UnknownRequest(f"no privacy request {request_id}")
    return _Request(*row)


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


@action
def verify_manually(cur: db.Cursor, request_id: int, username: str) -> None:
    """The DPO verified the requester another way: ``unverified`` -> ``pending``."""
    who = actor(username)
    request = _lock(cur, request_id)
    if request.status != Status.UNVERIFIED:
        raise ActionRefused(f"request {request_id} is {request.status}: only an unverified request needs verifying")
    requests.mark_verified(cur, request_id)
    _audit(cur, who, [(request_id, "verified", {"method": "manual"})])
    requests.notify_processor(cur)


@action
def deny(cur: db.Cursor, request_id: int, username: str, reason: str, hmac_key: bytes) -> None:
    """Refuse an open request as manifestly unfounded or excessive (Art. 12(5)): ``denied``,
    the outcome says why, the email and any corrections go, the proof stays."""
    who, text = actor(username), check_reason(reason)
    request = _lock_open(cur, request_id, "denied")
    requests.deny(cur, request_id, f"denied: {text}", request.proof(hmac_key))
    _audit(cur, who, [(request_id, "denied", {"reason": text})])


@action
def extend(cur: db.Cursor, request_id: int, username: str, months: int, reason: str) -> datetime:
    """Move an open request's deadline to ``months`` (1 or 2) months after the original one;
    return the new deadline. Refused once the original deadline has passed (the requester must
    be told within the first month) and when it would not move the deadline later."""
    who, count, text = actor(username), check_months(months), check_reason(reason)
    _lock_open(cur, request_id, "extended")
    due, original, new_due, passed = requests.extension(cur, request_id, count)  # locked above
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
    requests.set_due(cur, request_id, new_due)
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
    held = [request_id for request_id, status in _open_erasures(cur, proof, hmac_key) if status == Status.PENDING]
    if held:
        requests.hold(cur, held, proof)
    details = {"hold_id": hold_id, "until": None if until is None else until.isoformat(), "reason": text}
    audited = sorted({*held, *([] if acted_on is None else [acted_on])})
    _audit(cur, who, [(request_id, "held", details) for request_id in audited])
    return HoldPlaced(hold_id, held)


def _open_erasures(cur: db.Cursor, proof: str, hmac_key: bytes) -> list[tuple[int, str]]:
    """The person's open erasure requests, locked: by their proof, or by their email where no
    proof is stored yet (computed here: the queue of open requests is short). Found first without
    a lock (nobody else's rows are locked), then locked in id order with NOWAIT: a row the
    processor holds now refuses the action (RequestBusy) rather than make it wait holding a lock."""
    theirs = [
        request_id
        for request_id, email, stored in requests.open_erasure_candidates(cur, proof)
        if (stored if stored is not None else proof_of(hmac_key, email or "")) == proof
    ]
    if not theirs:
        return []
    return requests.lock_open_now(cur, theirs)


@action
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


@action
def place_hold_for_email(
    cur: db.Cursor, email: str, username: str, reason: str, *, until: datetime | None, hmac_key: bytes
) -> HoldPlaced:
    """A legal hold on the person with this address, who may have filed no request yet. The
    hold's own row records who placed it and why; the audit trail (one entry per request) gets
    an entry for each erasure put on hold."""
    who, text, end = actor(username), check_reason(reason), check_until(until)
    try:
        proof = mailbox_proof(hmac_key, email)
    except InvalidEmail as e:
        raise InvalidArgument(f"cannot hold this address: {e}") from e
    return _hold_person(cur, proof, who, text, until=end, hmac_key=hmac_key, acted_on=None)


@action
def release_hold(cur: db.Cursor, hold_id: int, username: str, hmac_key: bytes, *, request_id: int | None = None) -> HoldReleased:
    """Release one legal hold, by its id. The person's erasures on hold go back to ``pending``
    (``hold_released`` on each, the processor woken) only when no other hold on them is active:
    ending a tax hold leaves a litigation hold in force. ``request_id``: the request the DPO acts
    from, which must be of the hold's person; the release is audited on it (without one, the
    hold's own row records who released it and when, and resumed erasures are audited)."""
    return _release(cur, hold_id, actor(username), hmac_key, request_id)


_HOLD = "SELECT email_hmac, released_at, released_by, until, until IS NULL OR until > now() FROM legal_holds WHERE id = %s"


def _lock_hold(cur: db.Cursor, hold_id: int, proof: str | None, request_id: int | None) -> str:
    """Lock a hold in force and return its person's proof; refused when it is unknown, of another
    person than ``proof`` (the request's), released or ended. A hold's row is locked only by a
    DPO's action: waited for when it is the action's first lock, else taken at once (NOWAIT)."""
    if not _valid_id(hold_id):
        raise UnknownHold(f"no legal hold {hold_id!r}: ids are positive whole numbers")
    cur.execute(_HOLD + (" FOR UPDATE" if request_id is None else " FOR UPDATE NOWAIT"), (hold_id,))
    row = cur.fetchone()
    if row is None:
        raise UnknownHold(f"no legal hold {hold_id}: pick one from the request's page")
    person, released_at, released_by, until, in_force = row
    if proof is not None and person != proof:
        raise ActionRefused(f"legal hold {hold_id} is not on the person of request {request_id}: nothing was released")
    if released_at is not None:
        raise ActionRefused(
            f"legal hold {hold_id} was already released ({released_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, {released_by})"
        )
    if not in_force:
        raise ActionRefused(
            f"legal hold {hold_id} ended {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC: there is nothing to release "
            "(the processor resumes the person's erasures by itself)"
        )
    return str(person)


def _release(cur: db.Cursor, hold_id: int, who: str, hmac_key: bytes, request_id: int | None) -> HoldReleased:
    proof = None
    if request_id is not None:
        proof = _lock(cur, request_id).proof(hmac_key)
        if proof is None:
            raise ActionRefused(f"request {request_id} names nobody (no email, no proof): there is no hold to release")
    person = _lock_hold(cur, hold_id, proof, request_id)
    cur.execute("UPDATE legal_holds SET released_at = now(), released_by = %s WHERE id = %s", (who, hold_id))
    remaining = active_hold_ids(cur, person)
    resumed: list[int] = []
    if not remaining:
        resumed = requests.lock_held_now(cur, person)
        if resumed:
            requests.resume(cur, resumed)
    details = {"hold_id": hold_id, "holds_still_active": remaining}
    audited = sorted({*resumed, *([] if request_id is None else [request_id])})
    _audit(cur, who, [(rid, "hold_released", details) for rid in audited])
    if resumed:
        requests.notify_processor(cur)
    return HoldReleased(hold_id, resumed, remaining)


@action
def release_only_hold(cur: db.Cursor, request_id: int, username: str, hmac_key: bytes) -> HoldReleased:
    """Release the one active hold on the person of this request; refused when there is none or
    more than one (then the DPO names the hold: ``release_hold``)."""
    who = actor(username)
    proof = _lock(cur, request_id).proof(hmac_key)
    holds = [] if proof is None else active_hold_ids(cur, proof)
    if not holds:
        raise ActionRefused(f"the person of request {request_id} is under no active legal hold: there is nothing to release")
    if len(holds) > 1:
        raise ActionRefused(
            f"the person of request {request_id} is under {len(holds)} active legal holds ({', '.join(map(str, holds))}): "
            "name the one to release (--hold ID)"
        )
    return _release(cur, holds[0], who, hmac_key, request_id)


def active_hold_ids(cur: db.Cursor, proof: str) -> list[int]:
    """The person's holds in force (not released, ``until`` not passed)."""
    cur.execute(f"SELECT id FROM legal_holds WHERE email_hmac = %s AND {ACTIVE_HOLD} ORDER BY id", (proof,))  # noqa: S608 - a constant
    return [int(row[0]) for row in cur.fetchall()]


@action
def lift_restriction(cur: db.Cursor, request_id: int, username: str, consent_mode: str) -> bool:
    """End the restriction of processing this completed request put in place, and give the
    person back the analytics consent they had before it; return whether consent was granted
    again. Nothing is granted when the person recorded a newer choice during the restriction
    (or was erased: the erasure's withdrawal is newer), when another restriction of theirs is
    still in force, or when they had withdrawn consent before it. With no record before it, a
    grant is recorded only in CONSENT_MODE=assumed (where no record counted as consent)."""
    who = actor(username)
    request = _lock(cur, request_id)
    if request.request_type != RequestType.RESTRICTION or request.status != Status.COMPLETED:
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


def budget_holders(cur: db.Cursor) -> list[str]:
    """Whom a budget may be set for: all analysts together, the daily report, each enabled analyst."""
    return [ledger.OVERALL, ledger.REPORT_ANALYST, *analysts.enabled_analysts(cur)]


def check_budget_epsilon(epsilon: float) -> float:
    """``epsilon`` when it is a budget the DPO may set: finite, above 0, at most MAX_BUDGET_EPSILON."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0 < epsilon <= MAX_BUDGET_EPSILON:
        raise InvalidArgument(f"a budget is an epsilon above 0 and at most {MAX_BUDGET_EPSILON:g}, such as 1 or 0.5")
    return float(epsilon)


@action
def set_budget(cur: db.Cursor, username: str, analyst: str, epsilon: float, period: str = ledger.DEFAULT_PERIOD) -> None:
    """Set ``analyst``'s budget (ledger.OVERALL: all analysts together) to ``epsilon`` per
    ``period``: kept in privacy_budget_changes and the audit trail in the DPO's name."""
    who = actor(username)
    value = check_budget_epsilon(epsilon)
    if period not in ledger.PERIODS:
        raise InvalidArgument(f"a budget's period is one of {', '.join(ledger.PERIODS)}")
    if analyst not in budget_holders(cur):
        raise InvalidArgument(
            f"there is no analyst {analyst[:40]!r}: choose an enabled account (python -m analytics.accounts list),"
            " the daily report's budget or the overall one"
        )
    ledger.set_budget(cur, analyst, value, who, period)
    _audit(cur, who, [(NO_REQUEST, "budget_set", {"analyst": analyst, "epsilon": value, "period": period})])
