"""Passwords, account names and the brake on guessing, without a database."""

from __future__ import annotations

from typing import Literal

import pytest
from argon2 import PasswordHasher

from console import auth

# Cheap parameters: the tests check behaviour, not the cost (production uses the library's).
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_a_password_is_hashed_with_argon2id_and_verified() -> None:
    passwords = auth.Passwords(FAST)
    stored = passwords.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert passwords.verify(stored, "correct horse battery staple")
    assert not passwords.verify(stored, "correct horse battery stapl")
    assert not passwords.verify("not a hash", "correct horse battery staple")
    assert not passwords.verify(stored, "correct horse battery staple" + "x" * 2000)


def test_an_unknown_account_costs_a_verification_too_and_is_refused() -> None:
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append(str(hash))
            return super().verify(hash, password)

    passwords = auth.Passwords(Counting(time_cost=1, memory_cost=8, parallelism=1))
    assert not passwords.verify(None, "anything at all")
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_a_weaker_hash_is_replaced_at_the_next_login() -> None:
    assert auth.Passwords(PasswordHasher()).needs_rehash(FAST.hash("x"))


@pytest.mark.parametrize("name", ["dora", "d.o-r_a2", "ab"])
def test_usernames_that_the_schema_accepts(name: str) -> None:
    assert auth.check_username(name) == name


@pytest.mark.parametrize("name", ["", "a", "Dora", "2dora", "dora smith", "x" * 41, "dora\n", "d\u00f6ra"])
def test_usernames_that_the_schema_refuses(name: str) -> None:
    with pytest.raises(auth.AccountError, match="2-40 characters"):
        auth.check_username(name)


def test_a_password_has_12_to_1024_characters() -> None:
    assert auth.check_password("x" * 12)
    with pytest.raises(auth.AccountError, match="at least 12"):
        auth.check_password("x" * 11)
    with pytest.raises(auth.AccountError, match="at most 1024"):
        auth.check_password("x" * 1025)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_attempts_without_a_success_lock_a_name_for_the_lockout_then_it_may_try_again() -> None:
    clock = Clock()
    throttle = auth.Throttle(max_failures=5, lockout_s=300, clock=clock)
    for _ in range(4):
        assert throttle.attempt("dora") == 0
    assert throttle.retry_after("dora") == 0
    assert throttle.attempt("dora") == 0  # the fifth is checked; it locks the name if it fails
    assert throttle.retry_after("dora") == 300
    assert throttle.attempt("dora") == 300  # refused, and not counted: the lockout does not grow
    assert throttle.attempt("erik") == 0  # other names are not affected
    clock.now += 299
    assert throttle.retry_after("dora") == pytest.approx(1)
    clock.now += 1
    assert throttle.attempt("dora") == 0
    assert throttle.retry_after("dora") == 0  # counting starts again


def test_attempts_count_before_their_outcome_is_known() -> None:
    """30 logins at once: only the first five are let through to the hash, whatever comes later."""
    throttle = auth.Throttle(max_failures=5, lockout_s=300, clock=Clock())
    assert [throttle.attempt("dora") == 0 for _ in range(30)] == [True] * 5 + [False] * 25


def test_a_success_clears_the_attempts_and_made_up_names_cannot_fill_the_memory() -> None:
    throttle = auth.Throttle(max_failures=2, clock=Clock(), max_tracked=3)
    throttle.attempt("dora")
    throttle.succeeded("dora")
    throttle.attempt("dora")
    assert throttle.retry_after("dora") == 0
    for name in ("a1", "a2", "a3", "a4"):
        throttle.attempt(name)
    assert len(throttle._failures) == 3
