"""What the DPO's actions accept before they touch the database: reasons, months, hold ends, proofs."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import psycopg2.errors
import pytest

from gdpr import actions, dpo
from gdpr.email_address import email_hmac
from gdpr.processing import normalise_email

KEY = b"unit-test-key"
NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def test_a_reason_is_trimmed_and_must_be_one_printable_line_of_at_most_500_characters() -> None:
    assert actions.check_reason("  manifestly excessive  ") == "manifestly excessive"
    assert actions.check_reason("é" * 500) == "é" * 500  # characters, not bytes
    for bad, expected in [(None, "give a reason"), ("", "give a reason"), ("\t ", "give a reason"),
                          ("x" * 501, "501 characters; at most 500"), ("a\nb", "one line"), ("a\x00b", "one line"),
                          ("a\u202eb", "one line")]:  # fmt: skip
        with pytest.raises(actions.InvalidArgument, match=expected):
            actions.check_reason(bad)


@pytest.mark.parametrize("months", [0, 3, -1, True, 1.5])
def test_an_extension_is_one_or_two_months(months: object) -> None:
    with pytest.raises(actions.InvalidArgument, match="1 or 2 months"):
        actions.check_months(months)  # type: ignore[arg-type]
    assert actions.check_months(1) == 1 and actions.check_months(2) == 2


def test_a_hold_ends_in_the_future_within_ten_years_or_never() -> None:
    assert actions.check_until(None, NOW) is None
    later = NOW + timedelta(days=30)
    assert actions.check_until(later, NOW) == later
    with pytest.raises(actions.InvalidArgument, match="has passed"):
        actions.check_until(NOW, NOW)
    with pytest.raises(actions.InvalidArgument, match="at most 10 years"):
        actions.check_until(NOW + timedelta(days=3700), NOW)
    with pytest.raises(actions.InvalidArgument, match="time zone"):
        actions.check_until(datetime(2027, 1, 1), NOW)  # noqa: DTZ001 - the naive time refused


def test_the_proof_is_the_processors_hmac_of_the_match_key_or_of_the_raw_text() -> None:
    assert actions.proof_of(KEY, " Jane.Doe@Example.COM ") == email_hmac(KEY, "jane.doe@example.com")
    assert actions.proof_of(KEY, "no address") == email_hmac(KEY, "no address")


@pytest.mark.parametrize("address", ["Bob@Shop.TEST", "ops@printer.local", "x@mail.invalid"])
def test_the_proof_of_an_address_at_a_special_use_domain_is_the_processors(address: str) -> None:
    """The processor accepts a stored address at .test/.local/.invalid (deliverable=False): the
    DPO's proof must be the same, or a hold would hold nobody."""
    assert actions.proof_of(KEY, address) == email_hmac(KEY, normalise_email(address))
    assert actions.mailbox_proof(KEY, address) == email_hmac(KEY, address.lower())


class Cursor:
    """Records statements; raises ``error`` at the first statement after ``SET LOCAL`` that
    contains ``fail_at``."""

    def __init__(self, error: Exception | None = None, fail_at: str = "") -> None:
        self.statements: list[str] = []
        self.error, self.fail_at = error, fail_at

    def execute(self, sql: str, _params: object = None) -> None:
        self.statements.append(sql)
        if self.error is not None and self.fail_at in sql and not sql.startswith("SET LOCAL"):
            raise self.error

    def fetchone(self) -> tuple[object, ...]:
        return (7, "erasure", "unverified", "jane@example.com", None)


@pytest.mark.parametrize("error", [psycopg2.errors.LockNotAvailable(), psycopg2.errors.DeadlockDetected()])
def test_a_lock_not_had_in_time_or_a_deadlock_is_a_busy_request_to_try_again(error: Exception) -> None:
    cur = Cursor(error, "FOR UPDATE")
    with pytest.raises(actions.RequestBusy, match="being processed right now: nothing was changed") as refused:
        actions.deny(cur, 7, "dora", "unfounded", KEY)  # type: ignore[arg-type]
    assert refused.value.__cause__ is error
    assert cur.statements[0] == "SET LOCAL lock_timeout = %s"  # before any row is locked


def test_every_action_bounds_its_lock_waits_first_and_hides_no_other_error() -> None:
    assert actions.LOCK_WAIT_MS == 5000
    for act in (
        lambda cur: actions.verify_manually(cur, 7, "dora"),
        lambda cur: actions.extend(cur, 7, "dora", 1, "archive off site"),
        lambda cur: actions.place_hold(cur, 7, "dora", "litigation", until=None, hmac_key=KEY),
        lambda cur: actions.place_hold_for_email(cur, "bob@shop.test", "dora", "litigation", until=None, hmac_key=KEY),
        lambda cur: actions.release_hold(cur, 3, "dora", KEY, request_id=7),
        lambda cur: actions.release_only_hold(cur, 7, "dora", KEY),
        lambda cur: actions.lift_restriction(cur, 7, "dora", "assumed"),
    ):
        cur = Cursor(psycopg2.errors.QueryCanceled())  # a statement timeout at the first query: not "busy"
        with pytest.raises(psycopg2.errors.QueryCanceled):
            act(cur)
        assert cur.statements[0] == "SET LOCAL lock_timeout = %s"


def test_the_actor_is_the_dpos_name() -> None:
    assert actions.actor("dora") == "dpo:dora"
    for bad in ("", "a\nb", "x" * 41):
        with pytest.raises(actions.InvalidArgument):
            actions.actor(bad)


def test_the_release_command_names_a_hold_and_the_help_says_what_a_reason_may_hold() -> None:
    parser = dpo.build_parser()
    args = parser.parse_args(["--dpo", "dora", "release", "--hold", "3"])
    assert (args.hold, args.request) == (3, None)
    args = parser.parse_args(["--dpo", "dora", "release", "--request", "42"])
    assert (args.hold, args.request) == (None, 42)
    assert "never personal data" in " ".join(parser.format_help().split())
    with pytest.raises(SystemExit):
        parser.parse_args(["--dpo", "dora", "release", "42"])  # the old form: which hold?


def test_the_dpo_commands_read_ids_and_hold_ends_strictly() -> None:
    assert dpo.parse_until("2027-01-31") == datetime(2027, 1, 31, tzinfo=UTC)
    assert dpo.parse_until("2027-01-31T08:00:00+01:00") == datetime(2027, 1, 31, 7, tzinfo=UTC)
    assert dpo.request_id("42") == 42
    for bad in ("2027-01-31T08:00:00", "soon", "2027-02-30"):
        with pytest.raises(argparse.ArgumentTypeError):
            dpo.parse_until(bad)
    for bad in ("0", "-1", "4x", "99999999999999999999", " 4"):
        with pytest.raises(argparse.ArgumentTypeError):
            dpo.request_id(bad)
