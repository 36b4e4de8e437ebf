"""The privacy request (``privacy_requests``): its lifecycle and every statement on its table.

A request is filed (``unverified`` through the API until its emailed code is confirmed,
``pending`` when an operator or a DPO files it), waits ``on_hold`` while a legal hold is on its
person, and is answered once: ``completed``, ``not_found``, ``rejected``, ``denied`` or
``expired``. The values are those of the table's CHECK constraints (sql/014); the deadline runs
for every open status, on hold included.

Each component reads the table as its own login, with column-level grants (sql/003, 014, 018,
022, 024): a function here selects only the columns its caller's login may read, and says whose
it is. Every function works in the caller's transaction (the caller commits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json, execute_values

from core import db


class Status(StrEnum):
    """Where a request is in its lifecycle (``privacy_requests.status``)."""

    UNVERIFIED = "unverified"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    DENIED = "denied"
    EXPIRED = "expired"


class RequestType(StrEnum):
    """The right a request exercises (``privacy_requests.request_type``)."""

    ERASURE = "erasure"  # Art. 17
    ACCESS = "access"  # Art. 15/20
    RECTIFICATION = "rectification"  # Art. 16
    RESTRICTION = "restriction"  # Art. 18
    OBJECTION = "objection"  # Art. 21


# Requests still to be answered, in the order people read them: the deadline runs for all of
# them (a legal hold does not stop it), and a DPO may act only on them.
OPEN_STATUSES: tuple[Status, ...] = (Status.UNVERIFIED, Status.PENDING, Status.ON_HOLD)
# Every status and every type, in the order the console and the reports list them.
STATUSES: tuple[Status, ...] = tuple(Status)
REQUEST_TYPES: tuple[RequestType, ...] = tuple(RequestType)
# The processor's --watch LISTENs on this channel (a channel name, not the table).
NOTIFY_PROCESSOR = "SELECT pg_notify('privacy_requests', '')"


# --- Deadlines: the scheduler (scheduler_runner), the dashboard (dashboard_reader) and the
# --- processor's gauges. The first two may read only id, status, due_at (and request_type).


def due_before(cur: db.Cursor, warn_days: int) -> list[tuple[int, bool]]:
    """(id, overdue) of the open requests due before ``warn_days`` from now (the database's
    clock), soonest first. Reads id, status and due_at: the scheduler_runner's grant (sql/022)."""
    cur.execute(
        "SELECT id, due_at < now() FROM privacy_requests"
        " WHERE status = ANY(%s) AND due_at < now() + make_interval(days => %s) ORDER BY due_at, id",
        (list(OPEN_STATUSES), warn_days),
    )
    return [(int(request_id), bool(late)) for request_id, late in cur.fetchall()]


def open_deadlines(cur: db.Cursor) -> list[tuple[str, datetime]]:
    """(request type, due date) of every open request. Reads request_type, status and due_at:
    the dashboard_reader's grant (sql/024)."""
    cur.execute("SELECT request_type, due_at FROM privacy_requests WHERE status = ANY(%s)", (list(OPEN_STATUSES),))
    return [(str(kind), due) for kind, due in cur.fetchall()]


def deadline_counts(cur: db.Cursor, horizons: tuple[int, int]) -> list[tuple[str, int, int, int, int]]:
    """Per open status: (status, requests, overdue, due within horizons[0] days, due within
    horizons[1] days); statuses without a request are left out."""
    cur.execute(
        "SELECT status, count(*), count(*) FILTER (WHERE due_at < now()),"
        " count(*) FILTER (WHERE due_at >= now() AND due_at < now() + make_interval(days => %s)),"
        " count(*) FILTER (WHERE due_at >= now() AND due_at < now() + make_interval(days => %s))"
        " FROM privacy_requests WHERE status = ANY(%s) GROUP BY status",
        (*horizons, list(OPEN_STATUSES)),
    )
    return [(str(status), int(total), int(late), int(a), int(b)) for status, total, late, a, b in cur.fetchall()]


def notify_processor(cur: db.Cursor) -> None:
    """Wake the processor's ``--watch`` (it LISTENs on this channel) once the transaction commits."""
    cur.execute(NOTIFY_PROCESSOR)


# --- Housekeeping before each processor run (the processor's login) and retention (the
# --- retention login: id, status, processed_at, residue_removed_at and the export columns).


def resume_released_holds(cur: db.Cursor) -> list[int]:
    """Erasures on hold whose person has no active legal hold any more go back to pending; their ids."""
    cur.execute(
        "UPDATE privacy_requests AS r SET status = 'pending' WHERE status = 'on_hold' AND NOT EXISTS ("
        " SELECT FROM legal_holds AS h WHERE h.email_hmac = r.email_hmac"
        " AND h.released_at IS NULL AND (h.until IS NULL OR h.until > now()))"
        " RETURNING id"
    )
    return [int(row[0]) for row in cur.fetchall()]


def lock_unconfirmed(cur: db.Cursor, grace: str) -> list[tuple[int, str | None]]:
    """(id, email) of the API requests whose code expired unconfirmed (or whose code row is
    missing after ``grace``, an interval), locked; rows locked elsewhere are skipped."""
    cur.execute(
        "SELECT r.id, r.email FROM privacy_requests AS r LEFT JOIN privacy_verifications AS v ON v.request_id = r.id"
        " WHERE r.status = 'unverified' AND (v.expires_at < now()"
        " OR (v.request_id IS NULL AND r.requested_at < now() - %s::interval))"
        " ORDER BY r.id FOR UPDATE OF r SKIP LOCKED",
        (grace,),
    )
    return [(int(request_id), email) for request_id, email in cur.fetchall()]


def expire_unconfirmed(cur: db.Cursor, request_id: int, proof: str | None) -> None:
    """End a request whose code was not confirmed in time: ``expired``, the email and any
    corrections go, the keyed HMAC of what was asked stays."""
    cur.execute(
        "UPDATE privacy_requests SET status = 'expired', email = NULL, corrections = NULL, email_hmac = %s,"
        " outcome = 'the emailed code was not confirmed in time', processed_at = now() WHERE id = %s",
        (proof, request_id),
    )


def lock_expired_exports(cur: db.Cursor) -> list[tuple[int, str]]:
    """(id, export path) of the access exports past their download period, locked (skipping rows locked elsewhere)."""
    cur.execute(
        "SELECT id, export_path FROM privacy_requests WHERE export_path IS NOT NULL AND export_expires_at < now()"
        " FOR UPDATE SKIP LOCKED"
    )
    return [(int(request_id), str(path)) for request_id, path in cur.fetchall()]


def forget_exports(cur: db.Cursor, request_ids: list[int]) -> None:
    """The export files of these requests are deleted (unread, their download period over):
    nothing points at them any more. The processor's sweep and the privacy API both call it."""
    cur.execute("UPDATE privacy_requests SET export_path = NULL WHERE id = ANY(%s)", (request_ids,))


def delete_used_codes(cur: db.Cursor) -> int:
    """Delete the verification codes of requests no longer ``unverified``; return how many."""
    cur.execute(
        "DELETE FROM privacy_verifications AS v USING privacy_requests AS r"
        " WHERE r.id = v.request_id AND r.status <> 'unverified'"
    )
    return int(cur.rowcount)


def count_used_codes(cur: db.Cursor) -> int:
    """How many codes ``delete_used_codes`` would delete (a dry run)."""
    cur.execute(
        "SELECT count(*) FROM privacy_verifications AS v JOIN privacy_requests AS r ON r.id = v.request_id"
        " WHERE r.status <> 'unverified'"
    )
    return _count(cur)


_EXPIRED_EXPORT = "export_path IS NOT NULL AND export_expires_at < now()"


def count_expired_exports(cur: db.Cursor) -> int:
    """How many access exports are past their download period (a dry run of ``lock_expired_exports``)."""
    cur.execute(f"SELECT count(*) FROM privacy_requests WHERE {_EXPIRED_EXPORT}")  # noqa: S608 - a constant
    return _count(cur)


def export_paths(cur: db.Cursor) -> list[str]:
    """Every export path a request still points to."""
    cur.execute("SELECT export_path FROM privacy_requests WHERE export_path IS NOT NULL")
    return [str(path) for (path,) in cur.fetchall()]


# Answered before the cutoff and not cleared yet (``status`` in OPEN_STATUSES never qualifies).
_PROCESSED_BEFORE = "processed_at < %(since)s AND residue_removed_at IS NULL AND status <> ALL(%(open)s)"
_PROCESSED_DAYS = "count(*), (min(processed_at) AT TIME ZONE 'UTC')::date, (max(processed_at) AT TIME ZONE 'UTC')::date"


def residue_days(cur: db.Cursor, since: datetime) -> tuple[int, date | None, date | None]:
    """(requests, first day, last day) of the answered requests processed before ``since``
    whose residue is not cleared yet (a dry run of ``lock_residue``)."""
    params = {"since": since, "open": list(OPEN_STATUSES)}
    cur.execute(f"SELECT {_PROCESSED_DAYS} FROM privacy_requests WHERE {_PROCESSED_BEFORE}", params)  # noqa: S608 - constants
    row = cur.fetchone()
    return (0, None, None) if row is None else (int(row[0]), row[1], row[2])


def lock_residue(cur: db.Cursor, since: datetime, limit: int) -> list[tuple[int, str | None, date]]:
    """(id, export path, UTC day processed) of at most ``limit`` answered requests processed
    before ``since`` whose residue is not cleared yet, locked (skipping rows locked elsewhere)."""
    params = {"since": since, "open": list(OPEN_STATUSES), "limit": limit}
    cur.execute(
        f"SELECT id, export_path, (processed_at AT TIME ZONE 'UTC')::date FROM privacy_requests WHERE {_PROCESSED_BEFORE}"  # noqa: S608 - a constant
        " ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
        params,
    )
    return [(int(request_id), path, day) for request_id, path, day in cur.fetchall()]


def clear_residue(cur: db.Cursor, request_ids: list[int]) -> None:
    """Clear what retention removes of answered requests: the email, outcome, corrections,
    secret and export columns go; id, type, status, channel, dates and proof stay."""
    cur.execute(
        "UPDATE privacy_requests SET email = NULL, outcome = NULL, corrections = NULL, secret_hash = NULL,"
        " export_path = NULL, export_expires_at = NULL, export_downloaded_at = NULL, residue_removed_at = now()"
        " WHERE id = ANY(%s)",
        (request_ids,),
    )


def _count(cur: db.Cursor) -> int:
    row = cur.fetchone()
    return 0 if row is None else int(row[0])


# --- The processor (gdpr.process_privacy_requests, its own login: every column).

# An answer the processor records: (id, status, outcome, proof, export path).
Answer = tuple[int, str, str, str | None, str | None]


def lock_pending(cur: db.Cursor, limit: int) -> list[tuple[int, str, str | None, str, Any]]:
    """(id, type, email, channel, corrections) of at most ``limit`` pending requests, oldest
    first, locked; rows another processor or a DPO's action holds are skipped."""
    cur.execute(
        "SELECT id, request_type, email, channel, corrections FROM privacy_requests WHERE status = 'pending'"
        " ORDER BY requested_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    return [tuple(row) for row in cur.fetchall()]


def put_on_hold(cur: db.Cursor, held: list[tuple[int, str]]) -> None:
    """(id, proof): these erasures wait ``on_hold``, with their email kept and the proof stored
    (housekeeping finds them by it once the hold ends)."""
    cur.execute(
        "UPDATE privacy_requests SET status = 'on_hold', email_hmac = v.proof FROM unnest(%s::bigint[], %s::text[])"
        " AS v (id, proof) WHERE privacy_requests.id = v.id",
        ([request_id for request_id, _ in held], [proof for _, proof in held]),
    )


def record_answers(cur: db.Cursor, answers: Sequence[Answer], export_days: int) -> dict[int, datetime | None]:
    """Write the answers (id, status, outcome, proof, export path) in one statement: the email
    and any corrections go, the proof stays; an export may be downloaded for ``export_days``.
    Return each request's export expiry."""
    rows = execute_values(
        cur,
        sql.SQL(
            "UPDATE privacy_requests AS t SET status = v.status, outcome = v.outcome, email = NULL, corrections = NULL,"
            " email_hmac = v.proof, export_path = v.export_path, processed_at = now(),"
            " export_expires_at = CASE WHEN v.export_path IS NULL THEN NULL ELSE now() + make_interval(days => {}) END"
            " FROM (VALUES %s) AS v (id, status, outcome, proof, export_path) WHERE t.id = v.id"
            " RETURNING t.id, t.export_expires_at"
        ).format(sql.Literal(export_days)),
        list(answers),
        template="(%s::bigint, %s, %s, %s, %s)",
        page_size=len(answers),
        fetch=True,
    )
    return {int(request_id): expires for request_id, expires in rows}


def lock_exports_of(cur: db.Cursor, proofs: list[str]) -> list[tuple[int, str]]:
    """(id, export path) of the requests of these people (email proofs) whose export file is
    still pointed to, locked."""
    cur.execute(
        "SELECT id, export_path FROM privacy_requests WHERE email_hmac = ANY(%s) AND export_path IS NOT NULL FOR UPDATE",
        (proofs,),
    )
    return [(int(request_id), str(path)) for request_id, path in cur.fetchall()]


def requests_of(cur: db.Cursor, proof: str, request_id: int) -> list[tuple[int, str, str, datetime, datetime | None, datetime]]:
    """(id, type, status, requested, processed, due) of the person's requests (by proof) and
    of ``request_id``, for their access export."""
    cur.execute(
        "SELECT id, request_type, status, requested_at, processed_at, due_at FROM privacy_requests"
        " WHERE email_hmac = %s OR id = %s ORDER BY id",
        (proof, request_id),
    )
    return [tuple(row) for row in cur.fetchall()]


def erased_proofs(cur: db.Cursor, proofs: list[str]) -> set[str]:
    """Which of these email proofs a completed erasure kept (the person was erased before)."""
    cur.execute(
        "SELECT DISTINCT email_hmac FROM privacy_requests"
        " WHERE email_hmac = ANY(%s) AND request_type = 'erasure' AND status = 'completed'",
        (proofs,),
    )
    return {row[0] for row in cur.fetchall()}


def email_is_bound(cur: db.Cursor, request_id: int, proof: str, email: str) -> bool:
    """Whether a person's address must not change now: an open erasure request other than
    ``request_id`` names it (by proof, or by the stored address matching ``email``, the match
    key), or a legal hold is kept by its proof."""
    cur.execute(
        "SELECT EXISTS (SELECT FROM privacy_requests WHERE id <> %(id)s AND request_type = 'erasure'"
        " AND status IN ('unverified', 'pending', 'on_hold')"
        " AND (email_hmac = %(proof)s OR lower(email) = %(key)s OR normalize(email, NFC) = %(key)s))"
        " OR EXISTS (SELECT FROM legal_holds WHERE email_hmac = %(proof)s"
        " AND released_at IS NULL AND (until IS NULL OR until > now()))",
        {"id": request_id, "proof": proof, "key": email},
    )
    return bool(cur.fetchone()[0])  # type: ignore[index]


# --- The DPO console (dpo_console's login, sql/014: every column but the secret).

# What the queue shows of a request, and the database's clock to count days left by.
QUEUE_COLUMNS = "id, request_type, status, channel, requested_at, due_at, original_due_at, processed_at, now()"


def queue(cur: db.Cursor, status: str, request_type: str, *, recent_days: int, limit: int) -> list[tuple[Any, ...]]:
    """QUEUE_COLUMNS of at most ``limit`` requests: open ones first, the most urgent on top, then
    the answered ones, latest first. ``status``: '' (open, and answered in the last
    ``recent_days`` days), 'open', 'all' or a status; ``request_type``: '' (any) or a type."""
    conditions = []
    params: list[object] = []
    if status == "":
        conditions.append("(status IN ('unverified', 'pending', 'on_hold') OR processed_at > now() - make_interval(days => %s))")
        params.append(recent_days)
    elif status == "open":
        conditions.append("status IN ('unverified', 'pending', 'on_hold')")
    elif status != "all":
        conditions.append("status = %s")
        params.append(status)
    if request_type:
        conditions.append("request_type = %s")
        params.append(request_type)
    where = " AND ".join(conditions) or "true"
    cur.execute(
        f"SELECT {QUEUE_COLUMNS} FROM privacy_requests WHERE {where}"  # noqa: S608 - constants; values are parameters
        " ORDER BY status IN ('unverified', 'pending', 'on_hold') DESC,"
        " CASE WHEN status IN ('unverified', 'pending', 'on_hold') THEN due_at END, processed_at DESC NULLS LAST, id DESC"
        " LIMIT %s",
        [*params, limit],
    )
    return [tuple(row) for row in cur.fetchall()]


def detail(cur: db.Cursor, request_id: int) -> tuple[Any, ...] | None:
    """QUEUE_COLUMNS, then verified_at, outcome, email, whether corrections are held, the export's
    expiry and download, and the proof; None for an unknown id."""
    cur.execute(
        f"SELECT {QUEUE_COLUMNS}, verified_at, outcome, email, corrections IS NOT NULL,"  # noqa: S608 - a constant
        " export_expires_at, export_downloaded_at, email_hmac FROM privacy_requests WHERE id = %s",
        (request_id,),
    )
    row = cur.fetchone()
    return None if row is None else tuple(row)


# --- The privacy API (privacy_api's login, sql/014 and 016: a request's status columns, never
# --- its email or corrections; it changes only what the API itself changes).

_API_COLUMNS = sql.SQL(
    "id, request_type, status, outcome, secret_hash, requested_at, due_at, processed_at, verified_at,"
    " export_path, export_expires_at, export_downloaded_at"
)


@dataclass(frozen=True)
class ApiRequest:
    """What the privacy API may see of a request."""

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


def recent_to_mailbox(cur: db.Cursor, mailbox_proof: str) -> tuple[int, float]:
    """Requests mailed to this inbox (gdpr.email_address.mailbox, however the address was
    spelt) in the last hour, and the seconds until the oldest of them is an hour old."""
    cur.execute(
        "SELECT count(*), coalesce(extract(epoch FROM min(requested_at) + interval '1 hour' - now()), 0)::float8"
        " FROM privacy_requests WHERE mailbox_hmac = %s AND requested_at > now() - interval '1 hour'",
        (mailbox_proof,),
    )
    count, wait = cur.fetchone() or (0, 0.0)
    return int(count), float(wait)


def file_unverified(
    cur: db.Cursor,
    *,
    email: str,
    proof: str,
    mailbox_proof: str,
    request_type: str,
    corrections: dict[str, str] | None,
    secret_hash: str,
) -> ApiRequest:
    """File a request through the API, unverified (the trigger audits it 'received' and sets its due date)."""
    cur.execute(
        sql.SQL(
            "INSERT INTO privacy_requests"
            " (email, email_hmac, mailbox_hmac, request_type, status, channel, corrections, secret_hash)"
            " VALUES (%s, %s, %s, %s, 'unverified', 'api', %s, %s) RETURNING {}"
        ).format(_API_COLUMNS),
        (email, proof, mailbox_proof, request_type, None if corrections is None else Json(corrections), secret_hash),
    )
    row = cur.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return ApiRequest(*row)


def find_for_api(cur: db.Cursor, request_id: int, *, lock: bool = False) -> ApiRequest | None:
    """The request as the API may see it, locked until the transaction ends when ``lock``."""
    cur.execute(
        sql.SQL("SELECT {} FROM privacy_requests WHERE id = %s{}").format(_API_COLUMNS, sql.SQL(" FOR UPDATE" if lock else "")),
        (request_id,),
    )
    row = cur.fetchone()
    return None if row is None else ApiRequest(*row)


def mark_verified(cur: db.Cursor, request_id: int) -> None:
    """The requester's identity is confirmed (their emailed code, or a DPO): ``pending``."""
    cur.execute("UPDATE privacy_requests SET status = 'pending', verified_at = now() WHERE id = %s", (request_id,))


def expire_for_api(cur: db.Cursor, request_id: int, outcome: str) -> None:
    """The code was never confirmed: the request ends ``expired``, and the address and any
    corrections go (the keyed HMAC filed with it stays, for proof)."""
    cur.execute(
        "UPDATE privacy_requests SET status = 'expired', email = NULL, corrections = NULL, outcome = %s, processed_at = now()"
        " WHERE id = %s",
        (outcome, request_id),
    )


def mark_downloaded(cur: db.Cursor, request_id: int) -> None:
    """The export was handed over and its file deleted: nothing points at it any more."""
    cur.execute("UPDATE privacy_requests SET export_downloaded_at = now(), export_path = NULL WHERE id = %s", (request_id,))


# --- A DPO's actions (gdpr.actions, run by the console's and the dpo command's logins).


def requester(cur: db.Cursor, request_id: int) -> tuple[str, str] | None:
    """(email, type) of a request filed through the API while its address is still held."""
    cur.execute(
        "SELECT email, request_type FROM privacy_requests WHERE id = %s AND channel = 'api' AND email IS NOT NULL",
        (request_id,),
    )
    row = cur.fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def lock(cur: db.Cursor, request_id: int) -> tuple[int, str, str, str | None, str | None] | None:
    """(id, type, status, email, proof) of the request, locked until the transaction ends; None for an unknown id."""
    cur.execute(
        "SELECT id, request_type, status, email, email_hmac FROM privacy_requests WHERE id = %s FOR UPDATE", (request_id,)
    )
    row = cur.fetchone()
    return None if row is None else (int(row[0]), row[1], row[2], row[3], row[4])


def deny(cur: db.Cursor, request_id: int, outcome: str, proof: str | None) -> None:
    """The request ends ``denied`` with this outcome: the email and any corrections go, the proof stays."""
    cur.execute(
        "UPDATE privacy_requests SET status = 'denied', outcome = %s, processed_at = now(), email = NULL,"
        " corrections = NULL, email_hmac = %s WHERE id = %s",
        (outcome, proof, request_id),
    )


def extension(cur: db.Cursor, request_id: int, months: int) -> tuple[datetime, datetime, datetime, bool]:
    """(due date, original due date, original due date + ``months``, whether the original has
    passed) of a request known to exist."""
    cur.execute(
        "SELECT due_at, coalesce(original_due_at, due_at), coalesce(original_due_at, due_at) + make_interval(months => %s),"
        " coalesce(original_due_at, due_at) < now() FROM privacy_requests WHERE id = %s",
        (months, request_id),
    )
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no privacy request {request_id}")
    return row[0], row[1], row[2], bool(row[3])


def set_due(cur: db.Cursor, request_id: int, due: datetime) -> None:
    """Move the request's deadline (the trigger keeps the original one)."""
    cur.execute("UPDATE privacy_requests SET due_at = %s WHERE id = %s", (due, request_id))


def hold(cur: db.Cursor, request_ids: list[int], proof: str) -> None:
    """These erasures of one person wait ``on_hold``, with the person's proof stored."""
    cur.execute("UPDATE privacy_requests SET status = 'on_hold', email_hmac = %s WHERE id = ANY(%s)", (proof, request_ids))


def open_erasure_candidates(cur: db.Cursor, proof: str) -> list[tuple[int, str | None, str | None]]:
    """(id, email, proof) of the open erasures stored with this proof, or with no proof yet but
    an email (whose proof the caller computes); not locked."""
    cur.execute(
        "SELECT id, email, email_hmac FROM privacy_requests WHERE request_type = 'erasure'"
        " AND status IN ('unverified', 'pending', 'on_hold') AND (email_hmac = %s OR (email_hmac IS NULL AND email IS NOT NULL))",
        (proof,),
    )
    return [(int(request_id), email, stored) for request_id, email, stored in cur.fetchall()]


def lock_open_now(cur: db.Cursor, request_ids: list[int]) -> list[tuple[int, str]]:
    """(id, status) of those of these requests still open, locked in id order at once (NOWAIT:
    a row locked elsewhere raises LockNotAvailable)."""
    cur.execute(
        "SELECT id, status FROM privacy_requests WHERE id = ANY(%s) AND status IN ('unverified', 'pending', 'on_hold')"
        " ORDER BY id FOR UPDATE NOWAIT",
        (request_ids,),
    )
    return [(int(request_id), status) for request_id, status in cur.fetchall()]


def lock_held_now(cur: db.Cursor, proof: str) -> list[int]:
    """Ids of the person's requests on hold, locked in id order at once (NOWAIT)."""
    cur.execute(
        "SELECT id FROM privacy_requests WHERE status = 'on_hold' AND email_hmac = %s ORDER BY id FOR UPDATE NOWAIT",
        (proof,),
    )
    return [int(r[0]) for r in cur.fetchall()]


def resume(cur: db.Cursor, request_ids: list[int]) -> None:
    """These requests on hold go back to ``pending``."""
    cur.execute("UPDATE privacy_requests SET status = 'pending' WHERE id = ANY(%s)", (request_ids,))


# --- The GDPR audit report (reports.gdpr_audit_report, privacy_auditor: counts and durations,
# --- never an email; the auditor may read request_type, status and the dates).


def counts_by_type_and_status(cur: db.Cursor) -> dict[tuple[str, str], int]:
    """How many requests there are of each (type, status)."""
    cur.execute("SELECT request_type, status, count(*) FROM privacy_requests GROUP BY 1, 2")
    return {(kind, status): int(n) for kind, status, n in cur.fetchall()}


def count_overdue(cur: db.Cursor) -> int:
    """Open requests past their due time (Art. 12(3))."""
    cur.execute("SELECT count(*) FROM privacy_requests WHERE status = ANY(%s) AND due_at < now()", (list(OPEN_STATUSES),))
    return _count(cur)


def processing_seconds(cur: db.Cursor) -> tuple[float, float, float] | None:
    """(p50, p95, max) seconds from filing to answer of the processed requests; None if none is."""
    cur.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), percentile_cont(0.95) WITHIN GROUP (ORDER BY s), max(s)"
        " FROM (SELECT extract(epoch FROM processed_at - requested_at)::float8 AS s FROM privacy_requests"
        " WHERE processed_at IS NOT NULL) AS t"
    )
    row = cur.fetchone()
    return (float(row[0]), float(row[1]), float(row[2])) if row and row[0] is not None else None


def received_per_day(cur: db.Cursor, first: date) -> list[tuple[date, str, int, float | None]]:
    """(UTC day, type, requests received, p95 seconds to answer the processed ones) per day and
    type since ``first``."""
    cur.execute(
        "SELECT (requested_at AT TIME ZONE 'UTC')::date, request_type, count(*),"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - requested_at))"
        " FILTER (WHERE processed_at IS NOT NULL)"
        " FROM privacy_requests WHERE requested_at >= %s::date AT TIME ZONE 'UTC' GROUP BY 1, 2",
        (first,),
    )
    return [(day, kind, int(n), None if seconds is None else float(seconds)) for day, kind, n, seconds in cur.fetchall()]


def oldest_residue_day(cur: db.Cursor) -> date | None:
    """The first UTC day a processed request whose residue is still kept was answered."""
    cur.execute(
        "SELECT (min(processed_at) AT TIME ZONE 'UTC')::date FROM privacy_requests"
        " WHERE processed_at IS NOT NULL AND residue_removed_at IS NULL"
    )
    row = cur.fetchone()
    return None if row is None else row[0]
