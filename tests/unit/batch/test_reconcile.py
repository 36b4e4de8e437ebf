"""The comparison table of batch against streaming."""

from __future__ import annotations

from decimal import Decimal

from batch.reconcile import Comparison, render_table


def test_comparison_table_shows_differences() -> None:
    rows = [
        Comparison("purchase", 2, Decimal("10.00"), 3, Decimal("12.50")),
        Comparison("page_view", 5, Decimal(0), 5, Decimal(0)),
    ]
    table = render_table(rows)
    assert "+1" in table and "+2.50" in table
