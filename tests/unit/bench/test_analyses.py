"""The analyses bench's pure parts: the naive retention brought to the library's shape, and how two
answers are compared (bench.analyses), and the speedup the history bench reports (bench.history)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from analytics.cohorts import Cohort, Retention
from bench.analyses import first_difference, retention_answer, retention_from_counts, same_value
from bench.history import Result, analyses_speedup, pages, pair

MONDAY = date(2026, 3, 2)


def test_naive_retention_counts_become_the_librarys_cells_future_weeks_empty() -> None:
    as_of = MONDAY + timedelta(weeks=1, days=2)  # a Wednesday of the cohort's second week
    rows = [(MONDAY, None, 5), (MONDAY, 0, 5), (MONDAY, 1, 2), (MONDAY + timedelta(weeks=1), None, 3)]
    week2 = MONDAY + timedelta(weeks=1)
    assert retention_from_counts(rows, as_of, 3) == [(MONDAY, 5, (5, 2, None, None)), (week2, 3, (0, None, None, None))]
    library = Retention(
        "first-purchase",
        as_of,
        3,
        [
            Cohort(week2, None, 3, [0, None, None, None]),
            Cohort(MONDAY, None, 5, [5, 2, None, None]),
            Cohort(MONDAY, "DE", 5, [5, 2, None, None]),  # a country's row is not the whole cohort's
        ],
    )
    assert first_difference(retention_from_counts(rows, as_of, 3), retention_answer(library)) is None


def test_values_are_the_same_within_the_float_tolerance_only() -> None:
    assert same_value(1.0, 1.0 + 1e-12)
    assert not same_value(1.0, 1.001)
    assert same_value(Decimal("12.30"), Decimal("12.3"))
    assert same_value(3, Decimal(3))
    assert same_value(2.5, Decimal("2.5"))
    assert not same_value(None, 0)
    assert not same_value(0.0, None)
    assert same_value(None, None)
    assert not same_value("1", 1.0)
    assert same_value((1, (2.0, None)), (1, (2.0, None)))
    assert not same_value((1, 2), (1, 2, 3))
    assert not same_value((1,), 1)


def test_the_first_difference_names_the_row_and_columns_never_the_values() -> None:
    expected = [("a", date(2026, 1, 1), 3, 1.5), ("b", date(2026, 1, 2), 4, None)]
    assert first_difference(expected, list(expected)) is None
    assert first_difference(expected, expected[:1]) == "1 rows where the naive SQL has 2"
    changed = [expected[0], ("b", date(2026, 1, 2), 5, 0.0)]
    message = first_difference(expected, changed)
    assert message == "row 2 of 2 differs in column(s) [2, 3]"
    assert "5" not in (message or "").replace("[2, 3]", "")


def test_the_speedup_needs_both_times() -> None:
    assert analyses_speedup(Result(0.5), Result(10.0)) == 20.0
    assert analyses_speedup(Result(None), Result(10.0)) is None
    assert analyses_speedup(Result(0.5), Result(None)) is None
    assert pair([0.5, None]) == "0.50 s / FAILED"
    assert pages([Result(1.0), Result(2.0)]) == "- / -"
