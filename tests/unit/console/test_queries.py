"""What the console shows of a request: the masked address, days left, overdue, audit details."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.queries import AuditEntry, QueueRow, mask_email

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("email", "shown"),
    [("jane.doe@example.com", "j***@example.com"), (" José@exämple.de ", "J***@exämple.de"), ("no-at-sign", "***"),
     ("@example.com", "***"), (None, None)],
)  # fmt: skip
def test_the_address_is_masked_to_its_first_letter_and_domain(email: str | None, shown: str | None) -> None:
    assert mask_email(email) == shown


def row(status: str = "pending", due_in: timedelta = timedelta(days=3), processed: datetime | None = None) -> QueueRow:
    due = NOW + due_in
    return QueueRow(1, "erasure", status, "sql", due - timedelta(days=30), due, due, processed, NOW)


def test_days_left_count_down_to_the_deadline_and_below_zero_is_overdue() -> None:
    assert row(due_in=timedelta(days=3, hours=5)).days_left == 3
    assert row(due_in=timedelta(hours=5)).days_left == 0 and not row(due_in=timedelta(hours=5)).overdue
    late = row(due_in=-timedelta(hours=1))
    assert late.days_left == -1 and late.overdue
    assert row(status="on_hold", due_in=-timedelta(days=2)).overdue  # a hold does not stop the clock


def test_an_answered_request_is_never_overdue_but_may_have_been_answered_late() -> None:
    answered = row(status="denied", due_in=-timedelta(days=2), processed=NOW)
    assert answered.days_left is None and not answered.overdue and answered.answered_late
    assert not row(status="completed", processed=NOW).answered_late


def test_audit_details_read_as_one_line() -> None:
    entry = AuditEntry(NOW, "held", "dpo:dora", {"hold_id": 3, "until": None, "reason": "tax audit", "ids": [1, 2]})
    assert entry.details_text == "hold_id: 3; until: none; reason: tax audit; ids: [1, 2]"
