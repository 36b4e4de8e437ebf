"""What the console shows, read from PostgreSQL: the queue, one request, its timeline, holds, and
the privacy budgets with the ledger's latest releases.

The requester's email is never shown whole: while a request is open it appears masked
(``j***@example.com``), enough to tell two requests apart or match a letter, and after it is
answered it is gone from the database anyway (only its keyed HMAC stays).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics import ledger
from core import db
from gdpr import actions, requests
from gdpr.requests import OPEN_STATUSES

# The queue's default view: the open requests and those answered in the last RECENT_DAYS days.
RECENT_DAYS = 30
# Rows one page shows: the open queue is short; history beyond this is filtered by status.
QUEUE_LIMIT = 500
# The ledger's releases the budgets page lists, the latest first: a few days' work of a team;
# the whole ledger is the verifier's (python -m gdpr.verify_audit).
LEDGER_ROWS = 50
DAY_S = 86_400


def mask_email(email: str | None) -> str | None:
    """``jane.doe@example.com`` -> ``j***@example.com``; text without an ``@`` -> ``***``."""
    if email is None:
        return None
    local, at, domain = email.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


@dataclass(frozen=True)
class QueueRow:
    id: int
    request_type: str
    status: str
    channel: str
    requested_at: datetime
    due_at: datetime
    original_due_at: datetime | None
    processed_at: datetime | None
    now: datetime

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def days_left(self) -> int | None:
        """Whole days until the deadline, negative once it has passed; None once answered."""
        if not self.is_open:
            return None
        return math.floor((self.due_at - self.now).total_seconds() / DAY_S)

    @property
    def overdue(self) -> bool:
        return self.is_open and self.due_at < self.now

    @property
    def extended(self) -> bool:
        return self.original_due_at is not None and self.due_at > self.original_due_at

    @property
    def answered_late(self) -> bool:
        return self.processed_at is not None and self.processed_at > self.due_at


def queue(cur: db.Cursor, status: str = "", request_type: str = "") -> list[QueueRow]:
    """Open requests first, the most urgent on top, then the answered ones, latest first.
    ``status``: '' (open, and answered in the last RECENT_DAYS days), 'open', 'all' or a status."""
    return [QueueRow(*row) for row in requests.queue(cur, status, request_type, recent_days=RECENT_DAYS, limit=QUEUE_LIMIT)]


@dataclass(frozen=True)
class RequestDetail:
    row: QueueRow
    verified_at: datetime | None
    outcome: str | None
    masked_email: str | None
    has_corrections: bool
    export_expires_at: datetime | None
    export_downloaded_at: datetime | None
    proof: str | None  # the person's keyed HMAC, to find their holds; never shown


def request(cur: db.Cursor, request_id: int, hmac_key: bytes) -> RequestDetail | None:
    found = requests.detail(cur, request_id)
    if found is None:
        return None
    row = QueueRow(*found[:9])
    verified_at, outcome, email, has_corrections, expires, downloaded, stored_proof = found[9:]
    proof = stored_proof if stored_proof is not None else (None if email is None else actions.proof_of(hmac_key, email))
    return RequestDetail(
        row=row,
        verified_at=verified_at,
        outcome=outcome,
        masked_email=mask_email(email) if row.is_open else None,
        has_corrections=bool(has_corrections),
        export_expires_at=expires,
        export_downloaded_at=downloaded,
        proof=proof,
    )


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    action: str
    actor: str
    details: dict[str, Any]

    @property
    def details_text(self) -> str:
        """``key: value`` pairs, one line (the values are counts, ids and the DPO's reasons)."""
        return "; ".join(f"{k}: {_detail(v)}" for k, v in self.details.items())


def _detail(value: object) -> str:
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def timeline(cur: db.Cursor, request_id: int) -> list[AuditEntry]:
    """Every audit entry of the request, oldest first (id order is the chain's order)."""
    cur.execute("SELECT at, action, actor, details FROM privacy_audit_log WHERE request_id = %s ORDER BY id", (request_id,))
    return [
        AuditEntry(at, action, actor, details if isinstance(details, dict) else {})
        for at, action, actor, details in cur.fetchall()
    ]


@dataclass(frozen=True)
class Hold:
    id: int
    reason: str
    placed_by: str
    placed_at: datetime
    until: datetime | None
    released_at: datetime | None
    released_by: str | None
    active: bool


def holds(cur: db.Cursor, proof: str | None) -> list[Hold]:
    """The person's legal holds, newest first."""
    if proof is None:
        return []
    cur.execute(
        "SELECT id, reason, placed_by, placed_at, until, released_at, released_by,"
        " released_at IS NULL AND (until IS NULL OR until > now())"
        " FROM legal_holds WHERE email_hmac = %s ORDER BY id DESC",
        (proof,),
    )
    return [Hold(*row) for row in cur.fetchall()]


def restriction_in_force(cur: db.Cursor, request_id: int) -> bool:
    cur.execute("SELECT 1 FROM processing_restrictions WHERE request_id = %s AND lifted_at IS NULL", (request_id,))
    return cur.fetchone() is not None


@dataclass(frozen=True)
class BudgetsPage:
    """The budgets with their spending, the ledger's latest releases, and whom a budget may be set for."""

    budgets: list[ledger.Budget]
    entries: list[dict[str, Any]]  # analytics.ledger.entries: analysts, queries and epsilons, never a person
    holders: list[str]


def budgets_page(cur: db.Cursor) -> BudgetsPage:
    """What the privacy budgets page shows: aggregates and names only, never a person's data."""
    return BudgetsPage(ledger.budgets(cur), ledger.entries(cur, limit=LEDGER_ROWS), actions.budget_holders(cur))
