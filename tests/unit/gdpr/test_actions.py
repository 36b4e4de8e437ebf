"""What the DPO's actions accept before they touch the database: reasons, months, hold ends, proofs."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from gdpr import actions, dpo
from gdpr.email_address import email_hmac

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


def test_the_actor_is_the_dpos_name() -> None:
    assert actions.actor("dora") == "dpo:dora"
    for bad in ("", "a\nb", "x" * 41):
        with pytest.raises(actions.InvalidArgument):
            actions.actor(bad)


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
