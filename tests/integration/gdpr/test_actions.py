"""The DPO's actions on a real PostgreSQL, as the console's database role: each changes what it
says, writes its audit entry in the DPO's name, and refuses an impossible action with nothing
changed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from core import db
from core.config import Settings
from gdpr import actions
from gdpr.email_address import email_hmac
from gdpr.processing import process_pending
from tests.helpers import query, run_command, wait_until

pytestmark = pytest.mark.integration

DPO = "dora"
JANE = "Jane.Doe@Example.com"
USER = "3f1b2a9c-0000-4000-8000-000000000001"
AUDIT_CHAIN_LOCK = "platform_lock_audit_chain"  # sql/031: the lock table that serialises writers of the audit trail


def file_request(
    settings: Settings, email: str | None = JANE, kind: str = "erasure", status: str = "pending", days_ago: int = 0
) -> int:
    """A request as an operator or the API files it, received ``days_ago`` days ago."""
    [(request_id,)] = query(
        settings,
        "INSERT INTO privacy_requests (email, request_type, status, channel, requested_at)"
        " VALUES (%s, %s, %s, %s, now() - make_interval(days => %s)) RETURNING id",
        (email, kind, status, "api" if status == "unverified" else "sql", days_ago),
    )
    return int(request_id)


@pytest.fixture
def console(settings: Settings) -> Iterator[Callable[..., Any]]:
    """Run one action in its own transaction as the dpo_console role, committed on success, as DPO
    (an enabled account: the audit trail accepts no other DPO as actor, sql/031)."""
    query(settings, "INSERT INTO dpo_accounts (username, password_hash) VALUES (%s, 'x') ON CONFLICT DO NOTHING", (DPO,))
    with db.connection(settings.database, application_name="console", role=db.CONSOLE_ROLE) as conn:

        def act(action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            with conn, conn.cursor() as cur:
                return action(cur, *args, **kwargs)

        yield act


def request_row(settings: Settings, request_id: int) -> dict[str, Any]:
    columns = ("status", "outcome", "email", "email_hmac", "due_at", "original_due_at", "processed_at", "verified_at")
    [row] = query(settings, f"SELECT {', '.join(columns)} FROM privacy_requests WHERE id = %s", (request_id,))  # noqa: S608
    return dict(zip(columns, row, strict=True))


def trail(settings: Settings, request_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    """The request's audit entries after 'received': (action, actor, details)."""
    rows = query(
        settings, "SELECT action, actor, details FROM privacy_audit_log WHERE request_id = %s ORDER BY id", (request_id,)
    )
    return [(a, actor, d) for a, actor, d in rows if a != "received"]


def snapshot(settings: Settings) -> tuple[object, ...]:
    """Everything an action may change, to show that a refused one changed nothing."""
    return (
        query(settings, "SELECT * FROM privacy_requests ORDER BY id"),
        query(settings, "SELECT count(*) FROM privacy_audit_log"),
        query(settings, "SELECT * FROM legal_holds ORDER BY id"),
        query(settings, "SELECT * FROM processing_restrictions ORDER BY request_id"),
        query(settings, "SELECT count(*) FROM consent_ledger"),
    )


def refused(
    settings: Settings, act: Callable[[], Any], expected: str, kind: type[actions.ActionRefused] = actions.ActionRefused
) -> None:
    before = snapshot(settings)
    with pytest.raises(kind, match=expected):
        act()
    assert snapshot(settings) == before


def key(settings: Settings) -> bytes:
    return settings.gdpr_hmac_key


def proof(settings: Settings, email: str = JANE) -> str:
    return email_hmac(key(settings), email.lower())


def test_manual_verification_makes_an_unverified_request_pending_and_wakes_the_processor(
    settings: Settings, console: Callable[..., Any]
) -> None:
    request_id = file_request(settings, status="unverified")
    with db.connection(settings.database) as listener:
        listener.autocommit = True
        with listener.cursor() as cur:
            cur.execute("LISTEN privacy_requests")
        console(actions.verify_manually, request_id, DPO)

        def notified() -> bool:
            listener.poll()
            return bool(listener.notifies)

        wait_until(notified, timeout=10, what="the processor's notification")
        assert {n.channel for n in listener.notifies} == {"privacy_requests"}
    row = request_row(settings, request_id)
    assert row["status"] == "pending" and row["verified_at"] is not None
    assert trail(settings, request_id) == [("verified", "dpo:dora", {"method": "manual"})]
    refused(settings, lambda: console(actions.verify_manually, request_id, DPO), "only an unverified request")


def test_deny_removes_the_email_keeps_the_proof_and_records_the_reason(settings: Settings, console: Callable[..., Any]) -> None:
    request_id = file_request(settings, status="pending")
    console(actions.deny, request_id, DPO, "  the fifth identical request this week  ", key(settings))
    row = request_row(settings, request_id)
    assert row["status"] == "denied" and row["email"] is None and row["processed_at"] is not None
    assert row["outcome"] == "denied: the fifth identical request this week"
    assert row["email_hmac"] == proof(settings)
    assert trail(settings, request_id) == [("denied", "dpo:dora", {"reason": "the fifth identical request this week"})]
    refused(settings, lambda: console(actions.deny, request_id, DPO, "again", key(settings)), "is denied: only an open request")


def test_deny_of_an_address_that_is_no_mailbox_keeps_the_hmac_of_the_raw_text(
    settings: Settings, console: Callable[..., Any]
) -> None:
    request_id = file_request(settings, email="not an address", status="unverified")
    console(actions.deny, request_id, DPO, "not an address", key(settings))
    assert request_row(settings, request_id)["email_hmac"] == email_hmac(key(settings), "not an address")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("", "give a reason"), ("   ", "give a reason"), ("x" * 501, "has 501 characters; at most 500"), ("two\nlines", "one line")],
)
def test_deny_without_a_usable_reason_changes_nothing(
    settings: Settings, console: Callable[..., Any], reason: str, expected: str
) -> None:
    request_id = file_request(settings)
    refused(settings, lambda: console(actions.deny, request_id, DPO, reason, key(settings)), expected, actions.InvalidArgument)


def test_an_unknown_request_is_refused_by_every_action(settings: Settings, console: Callable[..., Any]) -> None:
    attempts: list[Callable[[], Any]] = [
        lambda: console(actions.verify_manually, 424242, DPO),
        lambda: console(actions.deny, 424242, DPO, "why", key(settings)),
        lambda: console(actions.extend, 424242, DPO, 1, "why"),
        lambda: console(actions.place_hold, 424242, DPO, "why", until=None, hmac_key=key(settings)),
        lambda: console(actions.release_only_hold, 424242, DPO, key(settings)),
        lambda: console(actions.release_hold, 1, DPO, key(settings), request_id=424242),
        lambda: console(actions.lift_restriction, 424242, DPO, "assumed"),
        lambda: console(actions.deny, 2**63, DPO, "why", key(settings)),
    ]
    for attempt in attempts:
        refused(settings, attempt, "no privacy request", actions.UnknownRequest)


def test_extension_moves_the_deadline_past_the_original_by_two_months_at_most(
    settings: Settings, console: Callable[..., Any]
) -> None:
    request_id = file_request(settings, days_ago=10)
    original = request_row(settings, request_id)["original_due_at"]
    [(one_month, two_months)] = query(
        settings, "SELECT %(o)s::timestamptz + interval '1 month', %(o)s::timestamptz + interval '2 months'", {"o": original}
    )
    assert console(actions.extend, request_id, DPO, 1, "records are archived off site") == one_month
    refused(settings, lambda: console(actions.extend, request_id, DPO, 1, "again"), "would not move it later")
    assert console(actions.extend, request_id, DPO, 2, "the archive is slower than said") == two_months
    row = request_row(settings, request_id)
    assert row["due_at"] == two_months and row["original_due_at"] == original and row["status"] == "pending"
    assert [(a, d["months"], d["reason"]) for a, _, d in trail(settings, request_id)] == [
        ("extended", 1, "records are archived off site"),
        ("extended", 2, "the archive is slower than said"),
    ]
    assert trail(settings, request_id)[-1][2]["due_at"] == two_months.isoformat()
    refused(settings, lambda: console(actions.extend, request_id, DPO, 3, "more"), "1 or 2 months", actions.InvalidArgument)


def test_extension_is_refused_once_the_original_deadline_has_passed_or_the_request_is_answered(
    settings: Settings, console: Callable[..., Any]
) -> None:
    overdue = file_request(settings, days_ago=40)
    refused(settings, lambda: console(actions.extend, overdue, DPO, 1, "late"), "within the first month")
    answered = file_request(settings, status="completed")
    refused(settings, lambda: console(actions.extend, answered, DPO, 1, "why"), "is completed: only an open request")


def test_a_hold_puts_the_persons_pending_erasures_on_hold_and_release_resumes_them(
    settings: Settings, console: Callable[..., Any]
) -> None:
    acted_on = file_request(settings, kind="access", status="pending")
    erasure = file_request(settings, email="  jane.doe@example.COM ")  # the same person, spelt otherwise
    unverified = file_request(settings, status="unverified")
    other = file_request(settings, email="someone.else@example.com")
    until = datetime.now(UTC) + timedelta(days=90)

    placed = console(actions.place_hold, acted_on, DPO, "litigation 2026-17", until=until, hmac_key=key(settings))
    assert placed.held_requests == [erasure]
    assert request_row(settings, erasure)["status"] == "on_hold"
    assert request_row(settings, erasure)["email_hmac"] == proof(settings)
    assert request_row(settings, unverified)["status"] == "unverified"  # held when verified (the processor)
    assert request_row(settings, other)["status"] == request_row(settings, acted_on)["status"] == "pending"
    [hold] = query(settings, "SELECT id, email_hmac, reason, placed_by, until, released_at FROM legal_holds")
    assert hold[:4] == (placed.hold_id, proof(settings), "litigation 2026-17", "dpo:dora") and hold[5] is None
    assert abs(hold[4] - until) < timedelta(seconds=1)
    for request_id in (acted_on, erasure):
        [(action, who, details)] = trail(settings, request_id)
        assert (action, who, details["hold_id"], details["reason"]) == ("held", "dpo:dora", placed.hold_id, "litigation 2026-17")
    assert trail(settings, other) == []

    released = console(actions.release_hold, placed.hold_id, DPO, key(settings), request_id=acted_on)
    assert released == actions.HoldReleased(placed.hold_id, [erasure], [])
    assert request_row(settings, erasure)["status"] == "pending"
    assert query(settings, "SELECT released_by FROM legal_holds") == [("dpo:dora",)]
    for request_id in (acted_on, erasure):
        assert trail(settings, request_id)[-1] == (
            "hold_released",
            "dpo:dora",
            {"hold_id": placed.hold_id, "holds_still_active": []},
        )
    refused(
        settings,
        lambda: console(actions.release_hold, placed.hold_id, DPO, key(settings), request_id=acted_on),
        f"legal hold {placed.hold_id} was already released",
    )
    refused(settings, lambda: console(actions.release_only_hold, acted_on, DPO, key(settings)), "under no active legal hold")


def process(settings: Settings) -> None:
    """One run of the processor, as ``python -m gdpr.process_privacy_requests`` does it."""
    process_pending(settings)


def test_releasing_one_of_two_holds_keeps_the_erasure_on_hold_until_the_other_is_released(
    settings: Settings, console: Callable[..., Any]
) -> None:
    access = file_request(settings, kind="access", status="completed")  # the request the DPO acts from
    query(settings, "UPDATE privacy_requests SET email = NULL, email_hmac = %s WHERE id = %s", (proof(settings), access))
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (%s, %s, 'Jane Doe', 'Main Street 1')",
        (USER, JANE.lower()),
    )
    query(settings, "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, 'DE', current_date)", (USER,))
    tax = console(actions.place_hold, access, DPO, "tax audit FY2025", until=None, hmac_key=key(settings)).hold_id
    litigation = console(actions.place_hold, access, DPO, "litigation 2026-17", until=None, hmac_key=key(settings)).hold_id
    erasure = file_request(settings)
    process(settings)
    assert request_row(settings, erasure)["status"] == "on_hold"

    refused(
        settings,
        lambda: console(actions.release_only_hold, access, DPO, key(settings)),
        rf"under 2 active legal holds \({tax}, {litigation}\): name the one to release",
    )
    released = console(actions.release_hold, tax, DPO, key(settings), request_id=access)
    assert released == actions.HoldReleased(tax, [], [litigation])
    process(settings)
    assert request_row(settings, erasure)["status"] == "on_hold"  # the litigation hold still stands
    assert query(settings, "SELECT id FROM legal_holds WHERE released_at IS NULL") == [(litigation,)]
    assert trail(settings, access)[-1] == ("hold_released", "dpo:dora", {"hold_id": tax, "holds_still_active": [litigation]})
    assert [a for a, _, _ in trail(settings, erasure)] == ["verified", "held"]  # nothing audited on the waiting erasure

    released = console(actions.release_only_hold, access, DPO, key(settings))  # now unambiguous
    assert released == actions.HoldReleased(litigation, [erasure], [])
    assert request_row(settings, erasure)["status"] == "pending"
    assert trail(settings, erasure)[-1] == ("hold_released", "dpo:dora", {"hold_id": litigation, "holds_still_active": []})
    process(settings)
    assert request_row(settings, erasure)["status"] == "completed"
    assert query(settings, "SELECT email FROM users_pii") == [(None,)]


def test_a_hold_is_released_only_from_a_request_of_its_person_and_only_while_in_force(
    settings: Settings, console: Callable[..., Any]
) -> None:
    jane = file_request(settings, kind="access")
    other = file_request(settings, email="someone.else@example.com", kind="access")
    hold = console(actions.place_hold, jane, DPO, "litigation 2026-17", until=None, hmac_key=key(settings)).hold_id
    refused(
        settings,
        lambda: console(actions.release_hold, hold, DPO, key(settings), request_id=other),
        f"legal hold {hold} is not on the person of request {other}",
    )
    refused(
        settings, lambda: console(actions.release_hold, 424242, DPO, key(settings)), "no legal hold 424242", actions.UnknownHold
    )
    query(settings, "UPDATE legal_holds SET until = now() - interval '1 minute' WHERE id = %s", (hold,))
    refused(settings, lambda: console(actions.release_hold, hold, DPO, key(settings)), "nothing to release")
    # Without a request: the hold's row records the release; no request's trail gets an entry.
    query(settings, "UPDATE legal_holds SET until = NULL WHERE id = %s", (hold,))
    assert console(actions.release_hold, hold, DPO, key(settings)) == actions.HoldReleased(hold, [], [])
    assert query(settings, "SELECT released_by FROM legal_holds") == [("dpo:dora",)]


def test_a_hold_on_an_address_at_a_special_use_domain_holds_the_erasure_the_processor_takes(
    settings: Settings, console: Callable[..., Any]
) -> None:
    access = file_request(settings, email="Bob@Shop.TEST", kind="access")
    placed = console(actions.place_hold, access, DPO, "litigation 2026-17", until=None, hmac_key=key(settings))
    assert query(settings, "SELECT email_hmac FROM legal_holds") == [(email_hmac(key(settings), "bob@shop.test"),)]
    erasure = file_request(settings, email="bob@shop.test")
    process(settings)
    assert request_row(settings, erasure)["status"] == "on_hold"
    assert trail(settings, erasure)[-1][2]["hold_id"] == placed.hold_id
    # A hold by address (nobody asked yet) is accepted for such an address too, with the same proof.
    by_address = console(actions.place_hold_for_email, " BOB@shop.test", DPO, "tax audit", until=None, hmac_key=key(settings))
    assert query(settings, "SELECT email_hmac FROM legal_holds WHERE id = %s", (by_address.hold_id,)) == [
        (email_hmac(key(settings), "bob@shop.test"),)
    ]


def test_a_hold_refuses_a_past_end_and_a_bad_reason(settings: Settings, console: Callable[..., Any]) -> None:
    request_id = file_request(settings)
    past = datetime.now(UTC) - timedelta(days=1)
    refused(
        settings,
        lambda: console(actions.place_hold, request_id, DPO, "why", until=past, hmac_key=key(settings)),
        "which has passed",
        actions.InvalidArgument,
    )
    refused(
        settings,
        lambda: console(actions.place_hold, request_id, DPO, "y" * 501, until=None, hmac_key=key(settings)),
        "at most 500",
        actions.InvalidArgument,
    )


def test_a_hold_on_an_address_without_a_request_holds_the_erasure_that_follows(
    settings: Settings, console: Callable[..., Any]
) -> None:
    placed = console(actions.place_hold_for_email, "jane.doe@example.com", DPO, "tax audit", until=None, hmac_key=key(settings))
    assert placed.held_requests == []
    assert query(settings, "SELECT email_hmac, placed_by FROM legal_holds") == [(proof(settings), "dpo:dora")]
    # The processor finds the hold by the same proof when the erasure comes.
    with db.connection(settings.database) as conn, conn, conn.cursor() as cur:
        assert actions.active_hold_ids(cur, proof(settings)) == [placed.hold_id]
    refused(
        settings,
        lambda: console(actions.place_hold_for_email, "not-an-address", DPO, "x", until=None, hmac_key=key(settings)),
        "cannot hold this address",
        actions.InvalidArgument,
    )


def restricted(settings: Settings, history: list[tuple[bool, str]]) -> int:
    """A completed restriction of USER, with ``history`` (granted, source) recorded before it."""
    for offset, (granted, source) in enumerate(history):
        query(
            settings,
            "INSERT INTO consent_ledger (user_id, purpose, granted, source, effective_at)"
            " VALUES (%s, 'analytics', %s, %s, now() - make_interval(days => %s))",
            (USER, granted, source, 10 - offset),
        )
    request_id = file_request(settings, email=None, kind="restriction", status="completed")
    query(
        settings,
        "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, 'analytics', false, 'restriction')",
        (USER,),
    )
    query(settings, "INSERT INTO processing_restrictions (request_id, user_id) VALUES (%s, %s)", (request_id, USER))
    return request_id


def consent_now(settings: Settings) -> list[tuple[bool, str]]:
    return query(settings, "SELECT granted, source FROM consent_current WHERE user_id = %s", (USER,))


@pytest.mark.parametrize(
    ("history", "mode", "restored"),
    [
        ([(True, "collector")], "required", True),
        ([(True, "collector"), (False, "collector")], "assumed", False),
        ([], "assumed", True),
        ([], "required", False),
    ],
)
def test_lifting_a_restriction_restores_the_consent_before_it(
    settings: Settings, console: Callable[..., Any], history: list[tuple[bool, str]], mode: str, restored: bool
) -> None:
    request_id = restricted(settings, history)
    assert console(actions.lift_restriction, request_id, DPO, mode) is restored
    assert consent_now(settings) == [(True, "restriction_lifted") if restored else (False, "restriction")]
    assert query(settings, "SELECT lifted_by FROM processing_restrictions") == [("dpo:dora",)]
    assert trail(settings, request_id) == [("restriction_lifted", "dpo:dora", {"consent_restored": restored})]
    refused(settings, lambda: console(actions.lift_restriction, request_id, DPO, mode), "not in force")


def test_lifting_keeps_a_newer_choice_and_refuses_what_is_no_restriction(settings: Settings, console: Callable[..., Any]) -> None:
    request_id = restricted(settings, [(True, "collector")])
    query(
        settings,
        "INSERT INTO consent_ledger (user_id, purpose, granted, source) VALUES (%s, 'analytics', false, 'erasure')",
        (USER,),
    )
    assert console(actions.lift_restriction, request_id, DPO, "assumed") is False
    assert consent_now(settings) == [(False, "erasure")]
    erasure = file_request(settings, status="completed")
    refused(settings, lambda: console(actions.lift_restriction, erasure, DPO, "assumed"), "only a completed restriction")


def test_the_trail_stays_chained_and_the_console_role_cannot_rewrite_it(settings: Settings, console: Callable[..., Any]) -> None:
    request_id = file_request(settings, status="unverified")
    console(actions.verify_manually, request_id, DPO)
    console(actions.deny, file_request(settings), DPO, "unfounded", key(settings))
    result = run_command("gdpr.verify_audit")
    assert result.returncode == 0, result.stdout + result.stderr
    with pytest.raises(psycopg2.Error):
        console(lambda cur: cur.execute("UPDATE privacy_audit_log SET actor = 'x'"))


# PostgreSQL's primary messages for SQLSTATE 55P03: a wait cut by lock_timeout, and FOR UPDATE NOWAIT.
LOCK_TIMEOUT_MESSAGE = "canceling statement due to lock timeout"
NOWAIT_MESSAGE = 'could not obtain lock on row in relation "privacy_requests"'


def busy_because(settings: Settings, act: Callable[[], Any]) -> str:
    """Refuse ``act`` as RequestBusy with nothing changed; the primary message of its 55P03."""
    before = snapshot(settings)
    with pytest.raises(actions.RequestBusy, match="is being processed right now: nothing was changed") as busy:
        act()
    assert snapshot(settings) == before
    cause = busy.value.__cause__
    assert isinstance(cause, psycopg2.errors.LockNotAvailable), cause
    return str(cause.diag.message_primary)


def test_an_action_on_a_request_the_processor_holds_waits_briefly_then_says_so(
    settings: Settings, console: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "LOCK_WAIT_MS", 200)  # the test's wait; the 5 s one is the same statement
    request_id = file_request(settings)
    with db.connection(settings.database) as processor, processor.cursor() as cur:
        cur.execute("SELECT id FROM privacy_requests WHERE id = %s FOR UPDATE", (request_id,))
        # It waited under lock_timeout (not NOWAIT) and gave up while the processor still holds the row
        # (a wait without a limit would never return here).
        assert busy_because(settings, lambda: console(actions.deny, request_id, DPO, "why", key(settings))) == (
            LOCK_TIMEOUT_MESSAGE
        )
        assert processor.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        processor.rollback()
    console(actions.deny, request_id, DPO, "why", key(settings))
    assert request_row(settings, request_id)["status"] == "denied"


def test_an_action_never_waits_for_the_persons_other_rows_while_holding_the_first(
    settings: Settings, console: Callable[..., Any]
) -> None:
    """The deadlock of the review: the processor holds the person's pending erasure and waits
    for their access request; a hold placed from that access request must not wait for the
    erasure while holding the access request."""
    access = file_request(settings, kind="access")
    erasure = file_request(settings)
    bystander = file_request(settings, email="someone.else@example.com")
    with db.connection(settings.database) as processor, processor.cursor() as cur:
        cur.execute("SELECT id FROM privacy_requests WHERE id = ANY(%s) FOR UPDATE", ([erasure, bystander],))
        # NOWAIT: refused at once by the erasure's own lock, not after waiting out lock_timeout.
        assert (
            busy_because(
                settings, lambda: console(actions.place_hold, access, DPO, "litigation", until=None, hmac_key=key(settings))
            )
            == NOWAIT_MESSAGE
        )
        # Somebody else's erasure in the processor's hands stops nobody's hold.
        processor.rollback()
        cur.execute("SELECT id FROM privacy_requests WHERE id = %s FOR UPDATE", (bystander,))
        placed = console(actions.place_hold, access, DPO, "litigation", until=None, hmac_key=key(settings))
        processor.rollback()
    assert placed.held_requests == [erasure]


def test_a_deadlock_postgresql_breaks_refuses_the_action_and_leaves_the_other_transaction_alone(
    settings: Settings, console: Callable[..., Any]
) -> None:
    """The action holds its request and waits for the audit trail's lock (sql/013), which the
    other transaction holds while it waits for that request: PostgreSQL breaks the cycle in the
    action, which began waiting first, and the action says to try again."""
    request_id = file_request(settings)
    errors: list[BaseException] = []
    with db.connection(settings.database) as other, other.cursor() as cur:
        cur.execute(f"SET lock_timeout = '20s'; LOCK TABLE {AUDIT_CHAIN_LOCK} IN EXCLUSIVE MODE")

        def deny() -> None:
            try:
                console(actions.deny, request_id, DPO, "unfounded", key(settings))
            except BaseException as e:  # checked below
                errors.append(e)

        acting = threading.Thread(target=deny)
        acting.start()
        wait_until(
            lambda: (
                query(
                    settings, "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted", (AUDIT_CHAIN_LOCK,)
                )
                == [(1,)]
            ),
            timeout=10,
            what="the action to wait for the audit trail",
        )
        cur.execute("SELECT id FROM privacy_requests WHERE id = %s FOR UPDATE", (request_id,))  # closes the cycle
        acting.join(timeout=15)
        assert not acting.is_alive()
        other.rollback()
    [error] = errors
    assert isinstance(error, actions.RequestBusy) and "being processed right now" in str(error)
    assert isinstance(error.__cause__, psycopg2.errors.DeadlockDetected)
    assert request_row(settings, request_id)["status"] == "pending"
