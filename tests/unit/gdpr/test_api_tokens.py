"""Secrets and codes: random, stored only as hashes, compared in constant time."""

from __future__ import annotations

from gdpr.api import tokens

KEY = b"unit-test-key"


def test_a_secret_is_256_random_bits_in_43_url_safe_characters() -> None:
    secrets = {tokens.new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(tokens.SECRET_PATTERN.fullmatch(s) for s in secrets)


def test_only_the_secrets_hash_is_kept_and_it_matches_that_secret_alone() -> None:
    secret = tokens.new_secret()
    stored = tokens.secret_hash(secret)
    assert secret not in stored and len(stored) == 64
    assert tokens.secret_matches(secret, stored)
    assert not tokens.secret_matches(tokens.new_secret(), stored)
    assert not tokens.secret_matches(secret, None)  # a request filed by SQL has none


def test_a_code_is_eight_digits() -> None:
    codes = [tokens.new_code() for _ in range(1000)]
    assert all(tokens.CODE_PATTERN.fullmatch(c) for c in codes)
    assert len(set(codes)) > 990
    assert any(c.startswith("0") for c in [tokens.new_code() for _ in range(200)])  # zero-padded, not shorter


def test_a_stored_code_is_keyed_and_bound_to_its_request() -> None:
    stored = tokens.code_hash(KEY, 7, "12345678")
    assert "12345678" not in stored
    assert tokens.code_matches(KEY, 7, "12345678", stored)
    assert not tokens.code_matches(KEY, 8, "12345678", stored)  # another request's code
    assert not tokens.code_matches(b"another key", 7, "12345678", stored)
    assert not tokens.code_matches(KEY, 7, "12345679", stored)
