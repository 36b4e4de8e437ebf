"""The consent endpoint's body: user id by the events' rules, a purpose, granted true or false."""

from __future__ import annotations

import json

import pytest

from collector.consent import ConsentChange, parse_change
from core.web import Problem

USER = "5b7c5a52-6d3e-4a57-9a0e-0d3c2b1f8e11"


def body(**changes: object) -> bytes:
    fields: dict[str, object] = {"user_id": USER.upper(), "purpose": "analytics", "granted": True}
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


def test_a_valid_change_has_the_canonical_user_id() -> None:
    assert parse_change(body()) == ConsentChange(USER, "analytics", True)
    assert parse_change(body(user_id=42, granted=False, purpose="ads_2")) == ConsentChange(
        "00000000-0000-0000-0000-00000000002a", "ads_2", False
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"user_id": ...}, "missing_field"),
        ({"granted": ...}, "missing_field"),
        ({"user_id": "nope"}, "invalid_user_id"),
        ({"user_id": 0}, "invalid_user_id"),
        ({"user_id": True}, "wrong_type"),
        ({"purpose": "Analytics"}, "invalid_purpose"),
        ({"purpose": "a" * 41}, "invalid_purpose"),
        ({"granted": "yes"}, "wrong_type"),
        ({"granted": 1}, "wrong_type"),
    ],
)
def test_a_wrong_field_is_422_naming_it(changes: dict[str, object], code: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_change(body(**changes))
    assert (caught.value.status, caught.value.code) == (422, code)


@pytest.mark.parametrize(("raw", "code"), [(b"{", "malformed_json"), (b"[]", "not_an_object"), (b'"x"', "not_an_object")])
def test_a_body_that_is_not_a_json_object_is_400(raw: bytes, code: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_change(raw)
    assert (caught.value.status, caught.value.code) == (400, code)
