"""Ingest redaction: each kind of personal data is found and replaced; look-alikes are kept."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from core.pii import iban_valid, luhn_valid, might_contain_pii, might_contain_pii_each, new_pseudonymous_user_id, redact_text


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+shop@example.co.uk", "email"),
        ("call +49 30 1234567", "phone"),
        ("call 0171 2345678", "phone"),
        ("from 203.0.113.77", "ip"),
        ("from 2001:db8::1", "ip"),
        ("card 4111 1111 1111 1111", "card"),
        ("iban DE89 3704 0044 0532 0130 00", "iban"),
        ("iban GB29NWBK60161331926819", "iban"),
    ],
)
def test_each_kind_is_redacted_and_counted(text: str, kind: str) -> None:
    counts: Counter[str] = Counter()
    redacted = redact_text(text, counts)
    assert f"[redacted-{kind}]" in redacted
    assert counts == Counter({kind: 1})


@pytest.mark.parametrize(
    "text",
    [
        '{"page":"/shoes/product/1234","device":"mobile","product_id":1234}',
        "order 1234567890123",  # 13 digits, no separators: an order number, not a phone
        "card 4111 1111 1111 1112",  # fails the Luhn check
        "at 2026-11-22T10:00:00 12:30:45",
        "version 1.2.3",
        "999.1.1.1 is no address",
    ],
)
def test_look_alikes_are_kept(text: str) -> None:
    counts: Counter[str] = Counter()
    assert redact_text(text, counts) == text
    assert not counts


def test_redaction_inside_json_keeps_it_valid() -> None:
    document = json.dumps({"note": 'mail "x" to a@b.org, card 4111-1111-1111-1111', "ip": "10.0.0.1"}, separators=(",", ":"))
    counts: Counter[str] = Counter()
    assert json.loads(redact_text(document, counts)) == {
        "note": 'mail "x" to [redacted-email], card [redacted-card]',
        "ip": "[redacted-ip]",
    }


def test_checksums_and_pseudonyms() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE88 3704 0044 0532 0130 00")
    ids = {new_pseudonymous_user_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(2**62 <= i < 2**63 for i in ids)


def test_the_batch_scan_finds_exactly_the_texts_the_single_check_would() -> None:
    texts = [
        '{"page":"/shoes/product/12","device":"mobile"}',
        '{"note":"mail me at anna@example.com"}',
        '{"product_id":1234}',
        '{"call":"+49 30 1234567"}',
        '{"ip":"2001:db8::1"}',
        '{"page":"/checkout/confirmation","browser":"chrome"}',
        '{"order":"1234567890123"}',
        '{"über":"café ☕"}',
        '{"a":"b:c"}',
        "{}",
    ]
    for n in range(1, len(texts) + 1):
        batch = texts[:n] + texts[: len(texts) - n]  # every text at several positions
        expected = {i for i, text in enumerate(batch) if might_contain_pii(text)}
        assert might_contain_pii_each([t.encode() for t in batch]) == expected
    assert might_contain_pii_each([texts[0].encode()] * 1000) == set()
