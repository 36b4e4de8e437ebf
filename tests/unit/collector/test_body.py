"""Splitting a body into events: each event's bytes exactly as sent; the body's own mistakes are 400 or 413."""

from __future__ import annotations

import pytest

from collector.body import JSON, NDJSON, media_type, split_events
from core.web import Problem


def refused(body: bytes, kind: str = JSON, max_events: int = 10) -> Problem:
    with pytest.raises(Problem) as caught:
        split_events(body, kind, max_events)
    return caught.value


def test_one_object_is_one_event_with_its_bytes_untouched() -> None:
    assert split_events(b'  { "event_id" :  "a" }\n', JSON, 10) == [b'{ "event_id" :  "a" }']


def test_an_array_gives_each_elements_own_bytes_in_order() -> None:
    body = b'[{"a": 1},  {"b" : [1, 2]} ,{"c":"\\u00e9"}]'
    assert split_events(body, JSON, 10) == [b'{"a": 1}', b'{"b" : [1, 2]}', b'{"c":"\\u00e9"}']


def test_array_elements_that_are_not_objects_are_left_to_per_event_validation() -> None:
    assert split_events(b'[1, "x", {"a": 1}]', JSON, 10) == [b"1", b'"x"', b'{"a": 1}']


def test_ndjson_gives_one_event_per_line_and_skips_blank_lines() -> None:
    body = b'{"a": 1}\r\n\n   \n{"b": 2}\nnot json\n'
    assert split_events(body, NDJSON, 10) == [b'{"a": 1}', b'{"b": 2}', b"not json"]


@pytest.mark.parametrize("body", [b"", b"   \n\t "])
@pytest.mark.parametrize("kind", [JSON, NDJSON])
def test_an_empty_body_is_400(body: bytes, kind: str) -> None:
    error = refused(body, kind)
    assert (error.status, error.code) == (400, "empty_body")


@pytest.mark.parametrize("body", [b"[{}, ", b'{"a": 1', b'{"a": 1} {"b": 2}', b"[1] x"])
def test_malformed_json_is_400_naming_the_problem_not_the_content(body: bytes) -> None:
    error = refused(body)
    assert (error.status, error.code) == (400, "malformed_json")
    assert '"a"' not in error.detail


@pytest.mark.parametrize("body", [b'"event"', b"42", b"null", b"true"])
def test_a_body_that_is_neither_object_nor_array_is_400(body: bytes) -> None:
    error = refused(body)
    assert (error.status, error.code) == (400, "not_an_event")


def test_an_empty_array_is_400() -> None:
    error = refused(b" [ ] ")
    assert (error.status, error.code) == (400, "no_events")


def test_more_events_than_allowed_is_413() -> None:
    assert len(split_events(b"[" + b",".join([b"{}"] * 3) + b"]", JSON, 3)) == 3
    error = refused(b"[" + b",".join([b"{}"] * 4) + b"]", JSON, 3)
    assert (error.status, error.code) == (413, "too_many_events")
    error = refused(b"{}\n" * 4, NDJSON, 3)
    assert (error.status, error.code) == (413, "too_many_events")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", JSON),
        ("Application/JSON; charset=utf-8", JSON),
        ("application/x-ndjson", NDJSON),
        (None, ""),
        ("", ""),
    ],
)
def test_media_type_ignores_case_and_parameters(header: str | None, expected: str) -> None:
    assert media_type(header) == expected
