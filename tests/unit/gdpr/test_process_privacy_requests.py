"""Privacy requests without services: which addresses are acted on, and the keyed proof."""

from __future__ import annotations

import pytest

from gdpr.email_address import email_hmac
from gdpr.processing import RejectedRequest, normalise_email


def test_normalise_email_lowercases_and_rejects_garbage() -> None:
    assert normalise_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert normalise_email("o'brien+news@example.com") == "o'brien+news@example.com"
    # An operator may name a stored address at a reserved domain; it is still an address.
    assert normalise_email("Nobody@Example.INVALID") == "nobody@example.invalid"
    bad = [
        None, "", "   ", "no-at-sign", "a@b", "x" * 250 + "@example.com", "a b@example.com", "a@@example.com",
        "'; DROP TABLE users_pii; --", "user\u200b@example.com", "user@example.com\u202e", "user@example.com\x00",
    ]  # fmt: skip
    for raw in bad:
        with pytest.raises(RejectedRequest):
            normalise_email(raw)


def test_email_hmac_is_keyed() -> None:
    assert email_hmac(b"k1", "a@example.com") == email_hmac(b"k1", "a@example.com")
    assert email_hmac(b"k1", "a@example.com") != email_hmac(b"k2", "a@example.com")
    assert "a@example.com" not in email_hmac(b"k1", "a@example.com")


def test_internationalised_addresses_are_kept_exactly_in_nfc() -> None:
    # Decomposed input (e + combining acute) is the same mailbox as the composed one.
    assert normalise_email("Jose\u0301@Example.com") == "Jos\u00e9@Example.com"
    assert normalise_email(" \u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a ") == "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a"


def test_a_look_alike_is_its_own_mailbox_never_the_latin_one() -> None:
    # A Cyrillic a or a full-width u is another string: it can only match that very address.
    for look_alike, latin in (("admin@ex\u0430mple.com", "admin@example.com"), ("\uff55ser@example.com", "user@example.com")):
        key = normalise_email(look_alike)
        assert key != latin
        assert key != normalise_email(latin)
