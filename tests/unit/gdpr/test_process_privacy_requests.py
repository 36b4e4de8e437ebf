"""Privacy requests without services: which addresses are acted on, and the keyed proof."""

from __future__ import annotations

import pytest

from gdpr.process_privacy_requests import RejectedRequest, email_hmac, normalise_email


def test_normalise_email_lowercases_and_rejects_garbage_and_look_alikes() -> None:
    assert normalise_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert normalise_email("o'brien+news@example.com") == "o'brien+news@example.com"
    bad = [
        None, "", "   ", "no-at-sign", "a@b", "x" * 250 + "@example.com", "a b@example.com", "a@@example.com",
        "'; DROP TABLE users_pii; --", "admin@ex\u0430mple.com",  # Cyrillic a
        "user\u200b@example.com", "user@example.com\u202e",
        "\uff55ser@example.com", "user@example.com\x00",
    ]  # fmt: skip
    for raw in bad:
        with pytest.raises(RejectedRequest):
            normalise_email(raw)


def test_email_hmac_is_keyed() -> None:
    assert email_hmac(b"k1", "a@example.com") == email_hmac(b"k1", "a@example.com")
    assert email_hmac(b"k1", "a@example.com") != email_hmac(b"k2", "a@example.com")
    assert "a@example.com" not in email_hmac(b"k1", "a@example.com")
