"""Entries of the privacy audit trail (``privacy_audit_log``), written once per transaction.

The trail is append-only and hash-chained (sql/013: a trigger chains each row to the one
before it, ``python -m gdpr.verify_audit`` checks the chain). Details never hold personal data:
counts, field names, reasons and file names only.
"""

from __future__ import annotations

from typing import Any

from psycopg2.extras import Json, execute_values

from core import db

PROCESSOR = "gdpr_processor"


class AuditLog:
    """The audit entries of one transaction, written with one INSERT."""

    def __init__(self, actor: str = PROCESSOR) -> None:
        self.actor = actor
        self.rows: list[tuple[int, str, str, Json]] = []

    def add(self, request_id: int, action: str, details: dict[str, Any] | None = None) -> None:
        self.rows.append((request_id, action, self.actor, Json(details or {})))

    def write(self, cur: db.Cursor) -> None:
        if self.rows:
            execute_values(cur, "INSERT INTO privacy_audit_log (request_id, action, actor, details) VALUES %s", self.rows)
            self.rows = []
