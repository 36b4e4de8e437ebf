"""Write keys: their form, their hash, how a request presents one, and the origins they allow."""

from __future__ import annotations

import hashlib
import re

import pytest

from collector.auth import KeyRing, WriteKey, check_name, hash_key, new_key, normalise_origin, presented_key
from core.errors import InvalidInput


def test_a_new_key_is_the_prefix_and_256_random_bits() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert re.fullmatch(r"ck_[A-Za-z0-9_-]{43}", key)


def test_the_stored_hash_is_sha256_hex_as_the_schema_requires() -> None:
    key = new_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(key))


@pytest.mark.parametrize(
    ("authorization", "header", "expected"),
    [
        ("Bearer ck_abc", None, "ck_abc"),
        ("bearer   ck_abc  ", None, "ck_abc"),
        (None, "ck_abc", "ck_abc"),
        ("Basic dXNlcjpwYXNz", "ck_abc", "ck_abc"),
        ("Basic dXNlcjpwYXNz", None, None),
        ("Bearer ", None, None),
        (None, "  ", None),
        (None, None, None),
    ],
)
def test_a_key_comes_from_authorization_bearer_or_x_write_key(
    authorization: str | None, header: str | None, expected: str | None
) -> None:
    assert presented_key(authorization, header) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://Shop.Example", "https://shop.example"),
        ("https://shop.example/", "https://shop.example"),
        ("https://shop.example:443", "https://shop.example"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_origins_are_stored_as_browsers_send_them(given: str, expected: str) -> None:
    assert normalise_origin(given) == expected


@pytest.mark.parametrize(
    "given",
    ["*", "shop.example", "ftp://shop.example", "https://shop.example/path", "https://u:p@shop.example", "https://x:99999"],
)
def test_anything_but_an_origin_is_refused(given: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_origin(given)


@pytest.mark.parametrize("name", ["web", "shop.example", "backend-2", "A_1"])
def test_key_names_follow_the_schema(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-web", "a b", "x" * 65, "naïve"])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(name)


def test_the_key_ring_finds_live_keys_by_hash_and_knows_revoked_ones() -> None:
    live_key, revoked_key = new_key(), new_key()
    web = WriteKey(1, "web", frozenset({"https://shop.example"}), 10)
    ring = KeyRing({hash_key(live_key): web}, frozenset({hash_key(revoked_key)}))
    assert ring.find(live_key) is web
    assert ring.find(revoked_key) is None and ring.is_revoked(revoked_key)
    assert ring.find(new_key()) is None and not ring.is_revoked(new_key())
    assert web.allows_origin("https://shop.example") and web.allows_origin("https://SHOP.example")
    assert not web.allows_origin("https://evil.example")
    assert ring.any_allows_origin("https://shop.example") and not ring.any_allows_origin("null")
    ring.replace({}, frozenset())
    assert ring.find(live_key) is None and len(ring) == 0
