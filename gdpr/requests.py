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

from datetime import datetime
from enum import StrEnum

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
# The same open set as SQL, for the statements below (constants: never a value from outside).
_OPEN_SQL = "status IN ({})".format(", ".join(f"'{s}'" for s in OPEN_STATUSES))


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
