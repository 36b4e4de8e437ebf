"""How the page writes each figure (the page's script writes them the same way: the browser test
compares a refreshed page with these)."""

from __future__ import annotations

import pytest

from dashboard import display


@pytest.mark.parametrize(
    ("value", "shown"), [(0, "0"), (999, "999"), (12345, "12,345"), (1234567, "1,234,567"), (None, display.DASH)]
)
def test_counts_are_grouped_by_thousands(value: int | None, shown: str) -> None:
    assert display.count(value) == shown


@pytest.mark.parametrize(("value", "shown"), [("0.00", "0.00"), ("5.10", "5.10"), ("1234567.89", "1,234,567.89")])
def test_money_keeps_its_cents_exactly(value: str, shown: str) -> None:
    assert display.money(value) == shown


def test_rates_shares_seconds_and_lag() -> None:
    assert display.rate(1204.3) == "1,204.3" and display.rate(0.0) == "0.0"
    assert display.pct(12.5) == "12.5 %" and display.pct(None) == display.DASH
    assert display.seconds(0.31) == "0.31 s" and display.seconds(None) == "unknown"
    assert display.lag(0) == "0" and display.lag(12000) == "12,000" and display.lag(None) == "unknown"


def test_times_are_shown_in_utc_to_the_second() -> None:
    assert display.when("2026-11-23T10:00:05+00:00") == "2026-11-23 10:00:05 UTC"
    assert display.when(None) == "never"
    assert display.finished(None) == "still running"
    assert display.finished("2026-11-23T10:00:05+00:00") == "2026-11-23 10:00:05 UTC"


def test_request_types_and_a_series_read_aloud() -> None:
    assert display.kinds({"access": 2, "erasure": 1200}) == "access 2, erasure 1,200"
    assert display.kinds({}) == display.DASH
    assert display.series([0, 1200, 5]) == "0; 1,200; 5"


def test_bars_scale_to_the_busiest_minute_and_a_busy_minute_is_never_flat() -> None:
    assert display.bars([0, 600, 300, 1]) == [(24, 0), (0, 24), (12, 12), (23, 1)]
    assert display.bars([0, 0]) == [(24, 0), (24, 0)]
    # Half a unit rounds up, as Math.round in the page's script does.
    assert display.bars([5, 48]) == [(21, 3), (0, 24)]


def test_people_and_the_median_time_between_steps() -> None:
    assert display.people(12345) == "12,345" and display.people("< 5 users, suppressed") == "< 5 users, suppressed"
    assert display.duration(None) == display.DASH and display.duration(42.4) == "42 s"
    assert display.duration(310.4) == "5.2 min" and display.duration(3600) == "60.0 min"
