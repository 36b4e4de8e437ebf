"""What the privacy API accepts from a client, checked before anything is stored or mailed."""

from __future__ import annotations

import json

import pytest

from core.web import Problem
from gdpr.api import payloads, tokens
from gdpr.requests import REQUEST_TYPES


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def refused(call: object, *args: object) -> Problem:
    with pytest.raises(Problem) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


@pytest.mark.parametrize("kind", REQUEST_TYPES[:2] + REQUEST_TYPES[3:])
def test_every_request_type_but_rectification_needs_an_address_and_its_type_only(kind: str) -> None:
    new = payloads.parse_new_request(body(email="  Jane.Doe@Example.ORG ", type=kind))
    assert (new.address, new.email, new.request_type, new.corrections) == (
        "Jane.Doe@Example.ORG",
        "jane.doe@example.org",
        kind,
        None,
    )


def test_an_internationalised_address_is_kept_as_it_is_in_nfc() -> None:
    decomposed = "jose\u0301@exa\u0308mple.de"  # e + combining acute, a + combining diaeresis
    new = payloads.parse_new_request(body(email=decomposed, type="erasure"))
    assert new.address == new.email == "josé@exämple.de"


def test_a_look_alike_is_its_own_address() -> None:
    new = payloads.parse_new_request(body(email="j\u0430ne@example.org", type="erasure"))  # Cyrillic a
    assert new.email == "j\u0430ne@example.org" and new.email != "jane@example.org"


def test_a_rectification_carries_checked_corrections() -> None:
    new = payloads.parse_new_request(
        body(email="jane@example.org", type="rectification", corrections={"full_name": " Jane Roe ", "email": "J@Example.org"})
    )
    assert new.corrections == {"full_name": "Jane Roe", "email": "j@example.org"}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty_body"),
        (b"   ", "empty_body"),
        (b"{", "malformed_json"),
        (b'{"email": "\xff"}', "malformed_json"),
        (b"[" * 10_000 + b"]" * 10_000, "invalid_body"),
        (body(email="jane@example.org"), "invalid_body"),
        (body(email="jane@example.org", type="erasure", extra=1), "invalid_body"),
        (body(email=["jane@example.org"], type="erasure"), "invalid_body"),
        (body(email="jane@example.org", type="Erasure"), "invalid_type"),
        (body(email="not an address", type="erasure"), "invalid_email"),
        (body(email="", type="erasure"), "invalid_email"),
        (body(email="jane\u200b@example.org", type="erasure"), "invalid_email"),
        (body(email="jane@example.org\nBcc: x@example.org", type="erasure"), "invalid_email"),
        (body(email="jane@example.org", type="erasure", corrections={}), "invalid_corrections"),
        (body(email="jane@example.org", type="rectification"), "invalid_corrections"),
        (body(email="jane@example.org", type="rectification", corrections={}), "invalid_corrections"),
        (body(email="jane@example.org", type="rectification", corrections={"role": "admin"}), "invalid_corrections"),
        (body(email="jane@example.org", type="rectification", corrections={"address": "x" * 501}), "invalid_corrections"),
        (body(email="jane@example.org", type="rectification", corrections={"full_name": 1}), "invalid_body"),
    ],
)
def test_anything_else_is_a_400_that_quotes_nothing_sent(raw: bytes, code: str) -> None:
    error = refused(payloads.parse_new_request, raw)
    assert (error.status, error.code) == (400, code)
    assert "jane" not in error.detail and "admin" not in error.detail


def test_a_long_decoding_error_is_cut_short() -> None:
    error = refused(payloads.parse_new_request, body(email="jane@example.org", type="erasure", **{"k" * 5000: 1}))
    assert error.code == "invalid_body" and len(error.detail) < 400


@pytest.mark.parametrize("sent", ["12345678", " 1234 5678 ", "1234-5678"])
def test_a_code_may_be_sent_as_people_copy_it(sent: str) -> None:
    assert payloads.parse_code(body(code=sent)) == "12345678"


@pytest.mark.parametrize(
    "sent", ["1234567", "123456789", "abcdefgh", "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", "12345678' OR '1'='1"]
)
def test_what_cannot_be_a_code_is_no_try(sent: str) -> None:
    error = refused(payloads.parse_code, body(code=sent))
    assert (error.status, error.code) == (400, "malformed_code")


@pytest.mark.parametrize("text", ["1", "42", "999999999999999999"])
def test_ids(text: str) -> None:
    assert payloads.parse_id(text) == int(text)


@pytest.mark.parametrize(
    "text", ["", "0", "01", "-1", "+1", " 1", "1.0", "1e3", "9999999999999999999", "\u0661", "\u00b9", "1 OR 1=1"]
)
def test_what_is_no_id_is_the_404_of_an_unknown_one(text: str) -> None:
    error = refused(payloads.parse_id, text)
    assert (error.status, error.body()) == (404, refused(payloads.parse_id, "0").body())


def test_the_secret_comes_as_a_bearer_token() -> None:
    secret = tokens.new_secret()
    assert payloads.bearer_secret(f"Bearer {secret}") == secret
    assert payloads.bearer_secret(f"bearer  {secret} ") == secret
    for missing in (None, "", "Bearer", "Bearer ", f"Basic {secret}", secret):
        assert refused(payloads.bearer_secret, missing).status == 401
    for malformed in ("Bearer x", f"Bearer {secret}A", "Bearer ' OR 1=1 --" + "x" * 30, f"Bearer {secret[:-1]}!"):
        assert refused(payloads.bearer_secret, malformed).code == "not_found"
