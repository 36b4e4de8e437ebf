"""The live dashboard in headless Chromium, as an operator watches it: the page is open, events
arrive through the real consumers, and the refreshed figures appear without a reload: the funnel,
today's revenue, the dead letters, the overdue privacy request in red.

The screenshot goes to the test's folder; with UPDATE_SCREENSHOTS=1 it is also copied to
docs/dashboard.png, the README's picture.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.cli import today_utc
from core.config import Settings
from dashboard import display, summary
from tests.browser import Browser, chromium_or_skip
from tests.helpers import (
    PROJECT_ROOT,
    RAW,
    STREAMING,
    known_events,
    produce,
    produce_events,
    query,
    start_service,
    wait_caught_up,
)
from tests.integration.dashboard.conftest import Dashboard, file_request, naive_people_funnel, record_run

pytestmark = pytest.mark.integration

# Events per minute the groups handled over the last minutes (oldest first), for a chart with a past.
HISTORY = [1800, 2200, 2600, 2400, 3100, 2900, 3300, 3000, 2700]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    running = Browser(chromium_or_skip(), tmp_path / "profile", width=1280, height=1000)
    try:
        yield running
    finally:
        running.close()


def a_realistic_morning(settings: Settings, groups: list[str]) -> None:
    """Open requests due at every distance, one overdue; the scheduler's night, one job failed; the
    consumers' last minutes (rows as the consumers record them, before this test's own events)."""
    file_request(settings, "erasure", "-2 days")
    file_request(settings, "access", "2 days", email="ana.silva@example.pt")
    file_request(settings, "rectification", "5 days", email="k.nowak@example.pl")
    file_request(settings, "erasure", "18 days", email="p.meyer@example.de")
    file_request(settings, "objection", "26 days", email="m.rossi@example.it")
    for job in ("batch", "daily-report", "gdpr-audit-report"):
        record_run(settings, job, "ok")
    record_run(settings, "retention", "failed", error="gdpr.retention exited with status 2")
    record_run(settings, "privacy-deadlines", "ok")
    for group in groups:
        for minutes_ago, events in zip(range(len(HISTORY), 0, -1), HISTORY, strict=True):
            query(
                settings,
                "INSERT INTO consumer_batches (consumer_group, topic, events, dead_letters, committed_at)"
                " VALUES (%s, %s, %s, 0, now() - make_interval(secs => %s))",
                (group, settings.kafka.topic, events, minutes_ago * 60 + 20),
            )


def bad_messages(settings: Settings) -> list[tuple[bytes | None, bytes]]:
    """What a faulty producer sends: not JSON, and purchases with a negative amount."""
    purchase = next(e for e in known_events(50, seed=7, days=[today_utc()]) if e.event_type == "purchase")
    negative = json.loads(purchase.to_json())
    negative["amount"] = "-5.00"
    return [(None, b"not json at all"), (None, json.dumps(negative).encode()), (None, b"{oops")]


def save(shot: Path) -> None:
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, PROJECT_ROOT / "docs" / shot.name)


def text(browser: Browser, selector: str) -> str:
    return str(browser.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? ''"))


def test_the_open_page_shows_new_events_the_funnel_and_the_overdue_request_without_a_reload(
    settings: Settings, group: str, dashboard: Dashboard, browser: Browser, tmp_path: Path
) -> None:
    raw_group, stream_group = f"raw-{group}", f"stream-{group}"
    a_realistic_morning(settings, [raw_group, stream_group])
    raw = start_service(RAW, raw_group, tmp_path)
    streaming = start_service(STREAMING, stream_group, tmp_path)
    try:
        browser.open(dashboard.url + "/")
        browser.wait_for("document.getElementById('live').textContent.startsWith('live')", what="the page's script")
        # The first render is complete: the overdue request is there before any refresh.
        assert text(browser, "#overdue") == "1"
        assert "alert" in str(browser.evaluate("document.querySelector('.tile[data-alert]').className"))
        assert text(browser, "#funnel tr[data-row=page_view] .people") == "0"
        browser.evaluate("window.stillTheSamePage = true")

        events = known_events(2000, seed=1616, days=[today_utc()])
        produce_events(settings, events)
        produce(settings, bad_messages(settings))
        wait_caught_up(settings, raw_group)
        wait_caught_up(settings, stream_group)

        # Today's ordered funnel of people, as a naive count over the same events says, under the k-rule.
        people = summary.funnel(
            naive_people_funnel(((e.user_id, e.event_type, e.event_timestamp) for e in events), today_utc(), 3600),
            settings.report_min_cell_users,
        )
        viewed = display.people(people[0]["people"])
        browser.wait_for(
            f"document.querySelector('#funnel tr[data-row=page_view] .people').textContent === {json.dumps(viewed)}",
            timeout=60,
            what=f"the funnel to show {viewed} people who viewed a page",
        )
        browser.wait_for(
            "[...document.querySelectorAll('#groups tbody tr[data-row] .lag')].every(c => c.textContent === '0')",
            timeout=60,
            what="both groups at lag 0",
        )
        assert browser.evaluate("window.stillTheSamePage") is True  # refreshed in place, never reloaded
        assert int(browser.evaluate("document.body.dataset.refreshed")) >= 1

        # The funnel, step by step, as the summary writes it.
        for step in people:
            assert text(browser, f"#funnel tr[data-row={step['step']}] .people") == display.people(step["people"])
            assert text(browser, f"#funnel tr[data-row={step['step']}] .share") == display.pct(step["of_previous_pct"])
            median = display.duration(step["median_from_previous_s"])
            assert text(browser, f"#funnel tr[data-row={step['step']}] .median") == median
        revenue = sum((e.amount or Decimal(0) for e in events), Decimal(0))
        assert text(browser, "#revenue") == display.money(str(revenue))
        assert text(browser, "#events") == display.count(len(events))
        # The overdue request, in red, and the rest by deadline.
        assert text(browser, "#overdue") == "1"
        assert browser.evaluate("document.querySelector('#deadlines tr[data-row=overdue]').className") == "alert"
        assert text(browser, "#deadlines tr[data-row=due_within_3_days] .count") == "1"
        # Both groups, each with its chart; the dead letters of the hour by reason; the failed job.
        rows = browser.evaluate("[...document.querySelectorAll('#groups tbody tr[data-row]')].map(r => r.dataset.row)")
        assert rows == [raw_group, stream_group]
        assert browser.evaluate("document.querySelectorAll('#groups svg.spark rect').length") == 20
        assert text(browser, "#dead-total") == "3"
        assert text(browser, "#dead-letters tr[data-row=not_json] td") == "2"
        assert "outcome-failed" in str(browser.evaluate("document.querySelector('#runs tr[data-row=retention]').className"))
        # No personal data reached the page.
        assert "@" not in str(browser.evaluate("document.body.innerText"))
        save(browser.screenshot(tmp_path / "dashboard.png"))
    finally:
        assert raw.stop() == 0, raw.output()
        assert streaming.stop() == 0, streaming.output()
