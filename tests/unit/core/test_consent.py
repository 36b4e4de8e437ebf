"""The consent decision: the last change at or before the event's time, by mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.consent import NO_CONSENT, WITHDRAWN, ConsentLedger

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
USER = "00000000-0000-0000-0000-000000000001"
OTHER = "00000000-0000-0000-0000-000000000002"


def test_required_mode_drops_a_user_without_any_record() -> None:
    assert ConsentLedger("required").decide(USER, T0) == NO_CONSENT


def test_assumed_mode_counts_a_user_without_any_record() -> None:
    assert ConsentLedger("assumed").decide(USER, T0) is None


@pytest.mark.parametrize("mode", ["required", "assumed"])
def test_a_grant_counts_from_its_time_on(mode: str) -> None:
    ledger = ConsentLedger(mode)
    ledger.add(USER, (T0, 1, True))
    before = ledger.decide(USER, T0 - timedelta(microseconds=1))
    assert before == (NO_CONSENT if mode == "required" else None)
    assert ledger.decide(USER, T0) is None
    assert ledger.decide(USER, T0 + timedelta(days=300)) is None
    assert ledger.decide(OTHER, T0 + timedelta(days=1)) == (NO_CONSENT if mode == "required" else None)


@pytest.mark.parametrize("mode", ["required", "assumed"])
def test_a_withdrawal_applies_to_events_after_it_in_both_modes(mode: str) -> None:
    ledger = ConsentLedger(mode)
    withdrawn = T0 + timedelta(hours=1)
    regranted = T0 + timedelta(hours=2)
    # Out of order on purpose: the ledger sorts by effective time.
    ledger.add(USER, (regranted, 3, True))
    ledger.add(USER, (T0, 1, True))
    ledger.add(USER, (withdrawn, 2, False))
    assert ledger.decide(USER, T0 + timedelta(minutes=59)) is None
    assert ledger.decide(USER, withdrawn) == WITHDRAWN
    assert ledger.decide(USER, regranted - timedelta(seconds=1)) == WITHDRAWN
    assert ledger.decide(USER, regranted) is None


def test_a_withdrawal_alone_drops_later_events_even_when_consent_is_assumed() -> None:
    ledger = ConsentLedger("assumed")
    ledger.add(USER, (T0, 7, False))
    assert ledger.decide(USER, T0 - timedelta(seconds=1)) is None
    assert ledger.decide(USER, T0 + timedelta(seconds=1)) == WITHDRAWN


def test_of_two_changes_at_one_instant_the_later_recorded_wins() -> None:
    ledger = ConsentLedger("required")
    ledger.add(USER, (T0, 5, True))
    ledger.add(USER, (T0, 9, False))
    assert ledger.decide(USER, T0) == WITHDRAWN


def test_a_grant_known_alone_sorts_before_later_changes_at_the_same_instant() -> None:
    ledger = ConsentLedger("assumed")
    ledger.add(USER, (T0, 4, True))
    ledger.add(USER, (T0, 8, False))
    assert ledger.decide(USER, T0) == WITHDRAWN
    assert ledger.decide(USER, T0 - timedelta(seconds=1)) is None
    assert len(ledger) == 1


def test_the_fast_path_decides_as_the_history_does() -> None:
    ledger = ConsentLedger("required")
    ledger.add(USER, (T0, 1, True))
    ledger.add(OTHER, (T0 + timedelta(hours=1), 2, True))
    ledger.settle(T0 + timedelta(days=1))
    later = T0 + timedelta(days=2)
    assert ledger.decide(USER, later) is None
    assert ledger.decide(USER, T0 - timedelta(seconds=1)) == NO_CONSENT  # before the horizon: the history decides
    assert ledger.decide(OTHER, T0 + timedelta(minutes=30)) == NO_CONSENT
    # A withdrawal takes the user off the fast path at once.
    ledger.add(USER, (T0 + timedelta(days=1, hours=12), 3, False))
    assert ledger.decide(USER, later) == WITHDRAWN
    # A new user's grant from before the horizon joins it; one after it does not need to.
    third = "00000000-0000-0000-0000-000000000003"
    ledger.add(third, (T0, 4, True))
    assert ledger.decide(third, later) is None
    fourth = "00000000-0000-0000-0000-000000000004"
    ledger.add(fourth, (T0 + timedelta(days=3), 5, True))
    assert ledger.decide(fourth, later) == NO_CONSENT
    assert ledger.decide(fourth, T0 + timedelta(days=3)) is None


def test_a_grant_made_after_settling_time_stays_off_the_fast_path() -> None:
    ledger = ConsentLedger("assumed")
    ledger.add(USER, (T0 + timedelta(days=5), 1, True))  # a grant dated in the future of the read
    ledger.add(OTHER, (T0, 2, False))
    ledger.settle(T0)
    assert ledger.decide(OTHER, T0 + timedelta(days=6)) == WITHDRAWN
    assert ledger.decide(USER, T0 + timedelta(days=6)) is None
