"""generate_events --behaviour shoppers against the stack: the stored events of each person are
sessions in order (a purchase right after their add-to-cart, that right after a page view) and
none precedes the person's signup; the run ends at the count or at the window's end, a few per
cent apart (the count sets the expected events)."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from core.config import Settings
from tests.helpers import consume_all, query, run_command

pytestmark = pytest.mark.integration

EVENTS = 4_000


def test_shoppers_stored_events_are_ordered_sessions_after_signup(settings: Settings, group: str, tmp_path: Path) -> None:
    assert run_command("data_generators.generate_users", "--count", "300").returncode == 0
    result = run_command(
        "data_generators.generate_events", "--behaviour", "shoppers", "--backfill-days", "14",
        "--count", str(EVENTS), "--rate", "0", "--processes", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    consume_all(settings, group, tmp_path)
    rows = query(
        settings,
        "SELECT e.user_id::text, e.event_type, e.event_timestamp, u.signup_date FROM events_raw AS e"
        " JOIN users_public AS u USING (user_id) ORDER BY e.user_id, e.event_timestamp, e.event_id",
    )
    report = re.search(r"events: ([\d,]+) delivered", result.stdout)
    assert report, result.stdout
    delivered = int(report[1].replace(",", ""))
    assert len(rows) == delivered
    assert 0.8 * EVENTS <= delivered <= EVENTS
    people: dict[str, list[tuple[str, object]]] = defaultdict(list)
    for user, kind, stamp, signup in rows:
        assert stamp.date() >= signup
        people[user].append((kind, stamp))
    # A sample of people, the most active first (they have the most to get wrong).
    sample = sorted(people.values(), key=len, reverse=True)[:50]
    assert sum(kind == "purchase" for own in sample for kind, _ in own) > 0
    for own in sample:
        assert own[0][0] == "page_view"
        for (before, then), (kind, stamp) in itertools.pairwise(own):
            step = stamp - then  # type: ignore[operator]
            if kind == "purchase":
                assert before == "add_to_cart" and timedelta(0) < step < timedelta(hours=1)
            if kind == "add_to_cart":
                assert before == "page_view" and timedelta(0) < step < timedelta(hours=1)
