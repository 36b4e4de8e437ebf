"""The DPO console in headless Chromium, as a DPO uses it: sign in, find the overdue request
(red), deny it with a reason, see the denial in its audit timeline.

The screenshots go to the test's folder; with UPDATE_SCREENSHOTS=1 they are also copied to
docs/ (console_queue.png, console_request.png), the README's pictures.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import db
from core.config import Settings
from gdpr import actions
from tests.browser import Browser
from tests.helpers import PROJECT_ROOT, query
from tests.integration.console.conftest import DPO, PASSWORD, Console, accounts, file_request

pytestmark = pytest.mark.integration

RED = "rgb(179, 38, 30)"  # --late in console.css


def a_realistic_queue(settings: Settings) -> int:
    """A few requests of every kind, one person under a legal hold; the overdue erasure's person
    under two, one of them released; return the overdue erasure's id."""
    file_request(settings, email="ana.silva@example.pt", kind="access", status="pending", days_ago=26)
    overdue = file_request(settings, email="jane.doe@example.com", kind="erasure", status="pending", days_ago=38)
    held = file_request(settings, email="p.meyer@example.de", kind="erasure", status="pending", days_ago=20)
    # The holds are a colleague's: the audit trail takes a DPO's actions only from an enabled account.
    assert accounts("create", "erik", "--password-stdin", password=PASSWORD).returncode == 0
    with db.connection(settings.database, role=db.CONSOLE_ROLE) as conn, conn, conn.cursor() as cur:
        key = settings.gdpr_hmac_key
        chargeback = actions.place_hold(cur, overdue, "erik", "Chargeback dispute 2026-118: settled", until=None, hmac_key=key)
        actions.place_hold(cur, overdue, "erik", "Litigation 2026-17: order records", until=None, hmac_key=key)
        actions.release_hold(cur, chargeback.hold_id, "erik", key, request_id=overdue)
        until = datetime.now(UTC) + timedelta(days=120)
        actions.place_hold(cur, held, "erik", "Tax audit FY2025 (records kept 10 years)", until=until, hmac_key=key)
    file_request(settings, email="k.nowak@example.pl", kind="rectification", status="unverified", days_ago=3)
    file_request(settings, email="li.wei@example.com", kind="restriction", status="pending", days_ago=12)
    file_request(settings, email="m.rossi@example.it", kind="objection", status="pending", days_ago=1)
    done = file_request(settings, email=None, kind="erasure", status="completed", days_ago=20)
    query(
        settings,
        "UPDATE privacy_requests SET processed_at = requested_at + interval '2 days', outcome = 'personal data erased'"
        " WHERE id = %s",
        (done,),
    )
    return overdue


def save(shot: Path) -> None:
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, PROJECT_ROOT / "docs" / shot.name)


def test_a_dpo_finds_the_overdue_request_denies_it_and_sees_the_timeline(
    settings: Settings, console: Console, browser: Browser, tmp_path: Path
) -> None:
    overdue = a_realistic_queue(settings)

    browser.open(console.url + "/")
    browser.wait_for("location.pathname === '/login'", what="the redirect to the login page")
    browser.type("#username", DPO)
    browser.type("#password", PASSWORD)
    browser.click("#login button[type=submit]")
    browser.wait_for("location.pathname === '/' && document.querySelector('table.queue')", what="the queue")

    row = f"tr[data-request='{overdue}']"
    assert browser.evaluate(f'document.querySelector("{row}").className') == "overdue"
    assert browser.evaluate(f'getComputedStyle(document.querySelector("{row} td")).color') == RED
    assert "overdue by" in browser.text(f"{row} td.days")
    assert browser.evaluate("document.querySelectorAll('tr.overdue').length") == 1
    save(browser.screenshot(tmp_path / "console_queue.png"))

    browser.click(f"{row} a")
    browser.wait_for(f"location.pathname === '/requests/{overdue}'", what="the request's page")
    assert "j***@example.com" in browser.text("dl.fields")
    # Each hold in force has its own release button; the released one has none.
    assert browser.evaluate("document.querySelectorAll('table.holds form[id^=release-]').length") == 1
    assert "never personal data" in browser.text("#deny")
    browser.type("#deny-reason", "Third identical request within a month, each answered in full (Art. 12(5))")
    browser.click("#deny button[type=submit]")
    browser.wait_for("location.search === '?done=deny'", what="the page after the denial")

    assert "Request denied" in browser.text(".notice")
    assert browser.evaluate("[...document.querySelectorAll('table.timeline td:nth-child(2)')].map(c => c.innerText)") == [
        "received",
        "held",
        "held",
        "hold_released",
        "denied",
    ]
    denied = browser.text("table.timeline tr.action-denied")
    assert "dpo:dora" in denied and "Third identical request within a month" in denied
    assert [a for (a,) in query(settings, "SELECT status FROM privacy_requests WHERE id = %s", (overdue,))] == ["denied"]
    save(browser.screenshot(tmp_path / "console_request.png"))
