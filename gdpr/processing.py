"""Process data-subject requests from ``privacy_requests``: erasure (Art. 17), access (Art. 15/20),
rectification (Art. 16), restriction (Art. 18) and objection (Art. 21).

This module is the dispatch and its command line: each kind of request is done by its own module.
Erasure (``gdpr.erasure``) makes the platform forget the person: PII nulled, events re-keyed to a
random id, their values scrubbed from event metadata and dead letters, and their access exports,
earlier or from the same batch, deleted. After a run that erased or corrected anybody, the
rewritten tables are vacuumed (``gdpr.vacuum``). An erasure of a person under a legal hold waits
``on_hold`` and runs once the hold ends. Access (``gdpr.access``) writes a JSON export of
everything held about the person to ``REPORTS_DIR/access/``; it may be downloaded for
ACCESS_EXPORT_DAYS, then it is deleted. Rectification, restriction and objection are in
``gdpr.rights``.

A row inserted by SQL is an operator's request, trusted as verified (the audit trail says so);
one filed through ``python -m gdpr.api`` becomes ``pending`` only once its mailed code came back.
Addresses are matched as ``gdpr.email_address`` says: ASCII without regard to case, an
internationalised address exactly (NFC). Every request ends ``completed``, ``not_found`` or
``rejected`` (not an address, or corrections that cannot apply), with an outcome and
``processed_at``; the requester's email is then removed and only a keyed HMAC of it is kept, for
proof. Each step is appended to ``privacy_audit_log``. Requests are locked with ``FOR UPDATE SKIP
LOCKED``, so several processors never handle one twice; processing is idempotent.
``process_privacy_requests()`` (no argument needed) is the same as the command without
``--watch``, for code written against the design. ``--watch`` keeps running and handles a new
request within about a second (LISTEN/NOTIFY from a trigger, with a periodic sweep as a safety
net, which also releases ended holds and expires unconfirmed requests and old exports), and serves
Prometheus metrics on ``--metrics-port`` (gdpr.metrics: requests answered by type and outcome,
open requests, those due soon and overdue; counts only).
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg2.extensions

from core import consent, db, locks, retry
from core.config import Settings, load_settings
from core.errors import ServiceUnavailable
from gdpr import housekeeping, mail, rights
from gdpr import metrics as gdpr_metrics
from gdpr import requests as request_store
from gdpr.access import export_user
from gdpr.audit import AuditLog
from gdpr.email_address import InvalidEmail, email_hmac, is_ascii, normalise
from gdpr.erasure import Person, already_erased, delete_access_exports, erase_people
from gdpr.exports import remove_export
from gdpr.requests import Status
from gdpr.vacuum import REWRITING, Rewrites, finish_vacuum_step, vacuum_after_erasure

__all__ = ["normalise_email", "process_privacy_requests"]

logger = logging.getLogger("gdpr.process_privacy_requests")

# Requests handled per transaction: a crash re-does at most this many, and they are idempotent.
# Each transaction costs a commit and a few set-based statements whatever its size: 1,000 a batch
# (rather than 200) took the erasure of 10,000 people over 10M events from 10.3 s to 10.0 s.
DEFAULT_BATCH = 1000
# A batch rolled back by a deadlock, a serialization failure or a lock wait is done again, this many
# times, after the platform's backoff (core.retry). Short waits, as a conflict between transactions
# clears in moments (and a lock wait already waited); decorrelated jitter, as the two parties of a
# deadlock that came back at the same instant would meet again.
BATCH_RETRIES = 3
BATCH_BACKOFF = retry.Backoff(first_s=0.1, max_s=2.0, jitter="decorrelated")
# The longest a batch waits for the erasure lock, held shared by each ingest batch, retention and
# each step of gdpr.person_days (a few seconds at most): past it the batch is rolled back and
# retried, before the statement timeout (which is not retried) would end the processor.
ERASURE_LOCK_WAIT_MS = 20_000
# --watch: the notification normally wakes the processor; the sweep catches anything missed.
SWEEP_INTERVAL_S = 30.0


class RejectedRequest(ValueError):
    """The request cannot be acted on; the message is the outcome recorded (never the input)."""


def normalise_email(raw: str | None) -> str:
    """The match key of a requested address (gdpr.email_address: ASCII lower-cased, an
    internationalised address NFC as given); RejectedRequest for what cannot be a mailbox."""
    try:
        return normalise(raw, deliverable=False)
    except InvalidEmail as e:
        raise RejectedRequest(str(e)) from e


@dataclass(frozen=True)
class Outcome:
    status: Status
    outcome: str
    proof: str | None = None  # HMAC of the normalised email, kept instead of the email
    export_path: str | None = None


def find_people(cur: db.Cursor, emails: list[str]) -> dict[str, Person]:
    """The users with these match keys, locked for the transaction: an ASCII key matches
    ``lower(email)`` (the unique index), an internationalised one the stored address in NFC."""
    ascii_keys = [e for e in emails if is_ascii(e)]
    other_keys = [e for e in emails if not is_ascii(e)]
    cur.execute(
        "SELECT CASE WHEN lower(email) = ANY(%(ascii)s) THEN lower(email) ELSE normalize(email, NFC) END,"
        " user_id::text, email, full_name, address FROM users_pii"
        " WHERE lower(email) = ANY(%(ascii)s) OR (cardinality(%(other)s::text[]) > 0 AND normalize(email, NFC) = ANY(%(other)s))"
        " ORDER BY user_id FOR UPDATE",
        {"ascii": ascii_keys, "other": other_keys},
    )
    return {key: Person(str(user_id), email, name, address) for key, user_id, email, name, address in cur.fetchall()}


@dataclass(frozen=True)
class Request:
    request_id: int
    request_type: str
    email: str  # normalised
    proof: str  # keyed HMAC of the email, computed once
    corrections: object = None  # rectification: the corrected values as filed


def _erase(
    cur: db.Cursor,
    erasures: list[Request],
    people: dict[str, Person],
    results: dict[int, Outcome],
    audit: AuditLog,
    *,
    partitions: set[str] | None = None,
) -> None:
    """Erase the people of these requests, delete their access exports (earlier ones, and one
    answered in this batch, which ``results`` holds), and record the outcomes."""
    erased = erase_people(cur, list({people[r.email].user_id: people[r.email] for r in erasures}.values()), partitions)
    erased_proofs = {r.proof for r in erasures}
    delete_access_exports(cur, sorted(erased_proofs), audit)
    for request_id, outcome in list(results.items()):
        if outcome.export_path is not None and outcome.proof in erased_proofs:
            removed = remove_export(outcome.export_path)
            audit.add(request_id, "export_deleted", {"reason": "the person was erased", "file_removed": removed})
            results[request_id] = Outcome(
                Status.COMPLETED, "access export written, then deleted: the person was erased", outcome.proof
            )
    for r in erasures:
        done = erased[people[r.email].user_id]
        if done.residual_values:
            logger.warning(
                "privacy request %d: %d values of the person are still stored after erasure", r.request_id, done.residual_values
            )
        audit.add(r.request_id, "erased", asdict(done))
        audit.add(r.request_id, "completed")
        results[r.request_id] = Outcome(Status.COMPLETED, "personal data erased; events re-keyed to a random id", r.proof)


def _accept(
    rows: list[tuple[int, str, str | None, str, object]], key: bytes, audit: AuditLog, results: dict[int, Outcome]
) -> list[Request]:
    """The requests that name a mailbox; the others end rejected. A request an operator
    inserted by SQL is trusted as verified (the design's way), and the trail says so; one filed
    through the API was verified by its mailed code before it became pending."""
    requests: list[Request] = []
    for request_id, request_type, raw_email, channel, corrections in rows:
        try:
            email = normalise_email(raw_email)
        except RejectedRequest as e:
            audit.add(request_id, "rejected", {"reason": str(e)})
            # The proof of what was asked stays, even unusable: the trail shows that somebody
            # asked, and a later request for the same text can be matched to this one.
            asked = None if raw_email is None else email_hmac(key, raw_email)
            results[request_id] = Outcome(Status.REJECTED, str(e), asked)
            continue
        requests.append(Request(request_id, request_type, email, email_hmac(key, email), corrections))
        if channel == "sql":
            audit.add(request_id, "verified", {"method": "operator request (SQL), trusted"})
    return requests


def _email_is_bound(cur: db.Cursor, r: Request) -> bool:
    """Whether the person's address must not change now: an open erasure request names it, or a
    legal hold is kept by its proof. Both find the person by that address; a new one would let
    the erasure end not_found, or a new erasure slip past the hold."""
    return request_store.email_is_bound(cur, r.request_id, r.proof, r.email)


def _rectify(cur: db.Cursor, r: Request, person: Person, audit: AuditLog) -> Outcome:
    try:
        corrections = rights.parse_corrections(r.corrections)
        if "email" in corrections and corrections["email"] != r.email and _email_is_bound(cur, r):
            raise rights.InvalidCorrections(
                "the email cannot be corrected while an erasure request or a legal hold is open for this person"
            )
        changed = rights.rectify(cur, person.user_id, corrections)
    except rights.InvalidCorrections as e:
        audit.add(r.request_id, "rejected", {"reason": str(e)})
        return Outcome(Status.REJECTED, str(e), r.proof)
    audit.add(r.request_id, "rectified", {"fields": changed})
    audit.add(r.request_id, "completed")
    what = ", ".join(changed) if changed else "nothing: the values were already as given"
    return Outcome(Status.COMPLETED, f"corrected: {what}", r.proof)


def _answer(cur: db.Cursor, settings: Settings, r: Request, person: Person, audit: AuditLog) -> Outcome:
    """Access, rectification, restriction or objection for a person found."""
    if r.request_type == "access":
        path = export_user(cur, r.request_id, person.user_id, r.proof, settings.reports_dir / "access")
        audit.add(r.request_id, "exported", {"file": path.name, "download_days": settings.access_export_days})
        audit.add(r.request_id, "completed")
        return Outcome(Status.COMPLETED, "access export written", r.proof, str(path))
    if r.request_type == "rectification":
        return _rectify(cur, r, person, audit)
    if r.request_type == "restriction":
        rights.restrict(cur, r.request_id, person.user_id)
        audit.add(r.request_id, "restricted")
        audit.add(r.request_id, "completed")
        return Outcome(
            Status.COMPLETED,
            "processing restricted: later events are neither stored nor counted, and no profile (RFM, lifetime value)"
            " is kept, until the restriction is lifted; earlier events stay",
            r.proof,
        )
    rights.object_to_analytics(cur, person.user_id)
    audit.add(r.request_id, "objected", {"purpose": consent.ANALYTICS})
    audit.add(r.request_id, "completed")
    return Outcome(Status.COMPLETED, "analytics consent withdrawn (objection); profile (RFM, lifetime value) deleted", r.proof)


def _handle(
    cur: db.Cursor,
    settings: Settings,
    requests: list[Request],
    results: dict[int, Outcome],
    audit: AuditLog,
    *,
    partitions: set[str] | None = None,
) -> None:
    """Find the people and answer every request; erasures last, together."""
    people = find_people(cur, sorted({r.email for r in requests}))
    erased_before = already_erased(cur, [r.proof for r in requests if r.email not in people and r.request_type == "erasure"])
    for r in requests:
        person = people.get(r.email)
        if person is None and r.request_type == "erasure" and r.proof in erased_before:
            audit.add(r.request_id, "completed", {"already_erased": True})
            results[r.request_id] = Outcome(Status.COMPLETED, "already erased by an earlier request", r.proof)
        elif person is None:
            audit.add(r.request_id, "not_found")
            results[r.request_id] = Outcome(Status.NOT_FOUND, "no user with this email", r.proof)
        elif r.request_type != "erasure":
            results[r.request_id] = _answer(cur, settings, r, person, audit)
    erasures = [r for r in requests if r.request_type == "erasure" and r.email in people]
    _erase(cur, erasures, people, results, audit, partitions=partitions)


def _record(cur: db.Cursor, results: dict[int, Outcome], export_days: int) -> dict[int, datetime | None]:
    """Write the outcomes: the email and any corrections go, the proof stays; an export may be
    downloaded for ``export_days``. Return each request's export expiry."""
    answers = [(rid, o.status, o.outcome, o.proof, o.export_path) for rid, o in results.items()]
    return request_store.record_answers(cur, answers, export_days)


@dataclass(frozen=True)
class Notice:
    """What a person who filed through the API is told when their request is answered."""

    email: str
    request_id: int
    request_type: str
    status: str
    export_expires_at: datetime | None


def _notify(settings: Settings, notices: list[Notice]) -> None:
    """Mail each requester the answer (after the commit: the answer is final, and only this
    process still holds the address). A mail that cannot go is logged and skipped: the person
    can still read the status with their secret. The first unreachable server ends the round."""
    for notice in notices:
        try:
            mail.notify_completion(
                settings,
                notice.email,
                request_id=notice.request_id,
                request_type=notice.request_type,
                status=notice.status,
                export_expires_at=notice.export_expires_at,
            )
        except mail.MailRefused as e:
            logger.warning("privacy request %d: answer not mailed: %s", notice.request_id, e)
        except ServiceUnavailable as e:
            logger.warning("privacy request %d and %d more: answer not mailed: %s", notice.request_id, len(notices) - 1, e)
            return


def process_batch(
    conn: psycopg2.extensions.connection,
    settings: Settings,
    batch_size: int = DEFAULT_BATCH,
    rewritten: Rewrites | None = None,
) -> Counter[str]:
    """Lock up to ``batch_size`` pending requests, process them set-based and commit; return
    counts by status. Access requests are answered before erasures, so the export reflects
    what was held; an erasure in the same batch then deletes that fresh export too (it is not
    in privacy_requests yet, where earlier exports are found). An erasure of a person under a
    legal hold waits ``on_hold`` with its email kept (housekeeping releases it). ``rewritten``
    collects what leaves old row versions behind: completed erasures and rectifications, and
    the partitions of events_raw the erasures rewrote."""
    outcomes: Counter[str] = Counter()
    answered: Counter[tuple[str, str]] = Counter()
    key = settings.gdpr_hmac_key
    with conn, conn.cursor() as cur:
        rows = request_store.lock_pending(cur, batch_size)
        if not rows:
            return outcomes
        # Taken after the requests are locked, so two processors never wait on each other in a cycle;
        # a wait past ERASURE_LOCK_WAIT_MS (a long job holding it shared) rolls the batch back to retry.
        # Shorter than the statement timeout, which is not retried and would end --watch.
        timeout_ms = settings.database.statement_timeout_ms  # 0: no statement timeout
        wait_ms = min(ERASURE_LOCK_WAIT_MS, max(timeout_ms // 2, 1)) if timeout_ms > 0 else ERASURE_LOCK_WAIT_MS
        # events_raw's days held first (a sink moving a day takes it before the erasure lock too):
        # a day moving out of the default partition would hide its events from the re-keying and
        # from an access export (sql/047).
        locks.hold_event_days(cur, wait_ms=wait_ms)
        locks.take(cur, locks.ERASURE, exclusive=True, wait_ms=wait_ms)
        audit = AuditLog()
        results: dict[int, Outcome] = {}
        requests = _accept(rows, key, audit, results)
        holds = housekeeping.active_holds(cur, sorted({r.proof for r in requests if r.request_type == "erasure"}))
        held = [r for r in requests if r.request_type == "erasure" and r.proof in holds]
        for r in held:
            audit.add(r.request_id, "held", {"hold_id": holds[r.proof], "reason": "a legal hold on the person is active"})
        requests = [r for r in requests if r not in held]
        _handle(cur, settings, requests, results, audit, partitions=None if rewritten is None else rewritten.partitions)
        audit.write(cur)
        if held:
            request_store.put_on_hold(cur, [(r.request_id, r.proof) for r in held])
        expiries = _record(cur, results, settings.access_export_days) if results else {}
        notices = [
            Notice(email, request_id, request_type, results[request_id].status, expiries.get(request_id))
            for request_id, request_type, email, channel, _corrections in rows
            if channel == "api" and email is not None and request_id in expiries
        ]
        for r in held:
            results[r.request_id] = Outcome(Status.ON_HOLD, "waiting for a legal hold", r.proof)
        for request_id, request_type, _email, _channel, _corrections in rows:
            logger.info("privacy request %d (%s): %s", request_id, request_type, results[request_id].status)
            outcomes[results[request_id].status] += 1
            answered[(request_type, results[request_id].status)] += 1
            if rewritten is not None and request_type in REWRITING and results[request_id].status == Status.COMPLETED:
                rewritten.requests[request_type] += 1
    gdpr_metrics.count_processed(answered)  # once committed: a rolled-back batch is done again
    _notify(settings, notices)
    return outcomes


def process_pending(settings: Settings, batch_size: int = DEFAULT_BATCH) -> Counter[str]:
    """Tidy (holds ended, codes expired, exports expired), then process every pending request;
    return counts by resulting status. Vacuums after any erasure or rectification."""
    total: Counter[str] = Counter()
    rewritten = Rewrites()
    with db.connection(settings.database, application_name="gdpr_processor", role=db.GDPR_ROLE) as conn:
        housekeeping.tidy(conn, settings.gdpr_hmac_key)
        # A deadlock with a DPO's action, a serialization failure or the erasure lock not had in
        # time: the batch was rolled back whole, so it is simply done again (each batch has its own
        # retries); a lost connection is not, as the batch's connection is gone.
        policy = retry.RetryPolicy(
            transient=lambda e: db.is_transient(e) and not conn.closed, backoff=BATCH_BACKOFF, max_retries=BATCH_RETRIES
        )

        def log(r: retry.Retry) -> None:
            logger.warning("privacy batch rolled back (%s); doing it again in %.1f s", db.describe_error(r.error), r.delay_s)

        while True:
            try:
                outcomes = retry.call(lambda: process_batch(conn, settings, batch_size, rewritten), policy, on_retry=log)
            except retry.GaveUp as e:
                raise e.error from None
            if not outcomes:
                break
            total.update(outcomes)
        if rewritten.requests:
            vacuum_after_erasure(conn, rewritten.partitions)
    return total


def process_privacy_requests(settings: Settings | None = None, batch_size: int = DEFAULT_BATCH) -> Counter[str]:
    """Process every pending request and return the counts by resulting status: the design's own
    entry point, callable with no argument (settings then come from the environment and the
    stack file, as for the command). Raises ConfigError for a missing or public HMAC key off the
    embedded stack, before any request is touched."""
    settings = settings if settings is not None else load_settings()
    settings.gdpr_hmac_key  # noqa: B018 - refuse a missing or public key before touching any request
    return process_pending(settings, batch_size)


def _refresh_deadlines(listener: psycopg2.extensions.connection) -> None:
    """The deadline gauges (gdpr.metrics), read on the listening connection; a transient failure
    only leaves them as they were until the next refresh."""
    try:
        with listener.cursor() as cur:
            gdpr_metrics.refresh_deadlines(cur)
    except psycopg2.Error as e:
        if not db.is_transient(e):
            raise
        logger.warning("privacy request deadlines not counted this time: %s", db.describe_error(e))


def watch(
    settings: Settings,
    stop: threading.Event,
    batch_size: int = DEFAULT_BATCH,
    sweep_s: float = SWEEP_INTERVAL_S,
    deadlines_every_s: float | None = None,
) -> Counter[str]:
    """Process requests as they arrive until ``stop`` is set; with ``deadlines_every_s``, also
    count the open requests' deadlines for the metrics that often."""
    total: Counter[str] = Counter()
    next_deadlines = time.monotonic()
    with db.connection(settings.database, application_name="gdpr_watch", role=db.GDPR_ROLE) as listener:
        listener.autocommit = True
        with listener.cursor() as cur:
            cur.execute("LISTEN privacy_requests")
        logger.info("watching privacy_requests (sweep every %.0f s)", sweep_s)
        while not stop.is_set():
            try:
                answered = process_pending(settings, batch_size)
                total.update(answered)
                if answered:  # the open counts changed: the gauges say so now, not a sweep later
                    next_deadlines = time.monotonic()
            except (ServiceUnavailable, psycopg2.Error) as e:
                if isinstance(e, psycopg2.Error) and not db.is_transient(e):
                    raise
                # Nothing was lost: what was rolled back is pending again, and the sweep retries.
                logger.warning("privacy requests not processed this round, trying again: %s", db.describe_error(e))
            # Idle: a few of the partitions a large erasure left for index cleanup, then back to the
            # requests; while some remain the loop comes round again at once.
            more = finish_vacuum_step(listener, stop)
            # Wake on a notification, on the sweep timer, or (within 1 s) on a stop request.
            deadline = time.monotonic() + (0.0 if more else sweep_s)
            while not stop.is_set() and time.monotonic() < deadline:
                if deadlines_every_s is not None and time.monotonic() >= next_deadlines:
                    _refresh_deadlines(listener)
                    next_deadlines = time.monotonic() + deadlines_every_s
                ready, _w, _x = select.select([listener], [], [], 1.0)
                if ready:
                    listener.poll()
                    if listener.notifies:
                        listener.notifies.clear()
                        break
    return total
