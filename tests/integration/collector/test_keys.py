"""``python -m collector.keys``: keys are made, listed and revoked by an operator, and a running
collector honours each change within seconds, without a restart."""

from __future__ import annotations

import hashlib
import json

import pytest

from core.config import Settings
from tests.helpers import query, run_command
from tests.integration.collector.conftest import Collector, create_key, event, wait_for_status

pytestmark = pytest.mark.integration


def test_a_new_key_works_and_a_revoked_one_stops_within_seconds(collector: Collector, settings: Settings) -> None:
    created = run_command("collector.keys", "create", "mobile", "--origin", "https://App.example/", "--rate", "50")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("ck_") and len(key) == 46

    wait_for_status(lambda: collector.post("/v1/events", json.dumps(event()).encode(), key), 202, timeout=10)

    listing = run_command("collector.keys", "list")
    assert listing.returncode == 0
    [row] = [line for line in listing.stdout.splitlines() if line.startswith("mobile ")]
    assert key[:11] + "..." in row and "https://app.example" in row and " 50 " in row
    stored_hash = hashlib.sha256(key.encode()).hexdigest()
    assert key not in listing.stdout and key[11:] not in listing.stdout and stored_hash not in listing.stdout
    assert query(settings, "SELECT key_hash FROM collector_write_keys WHERE name = 'mobile'") == [(stored_hash,)]

    revoked = run_command("collector.keys", "revoke", "mobile")
    assert revoked.returncode == 0, revoked.stderr
    refused = wait_for_status(lambda: collector.post("/v1/events", json.dumps(event()).encode(), key), 401, timeout=10)
    assert refused.json()["error"] == "revoked_write_key"
    # The same process refused it, after its periodic reload saw the change (web is the other live key):
    # no restart and no per-request lookup, the collector's own refresh (COLLECTOR_KEY_REFRESH_S).
    assert collector.process.poll() is None
    assert "write keys changed: 1 live" in collector.output()
    [row] = [line for line in run_command("collector.keys", "list").stdout.splitlines() if line.startswith("mobile ")]
    assert not row.rstrip().endswith("-")  # the revocation time is shown

    # A revoked name may be issued again.
    again = create_key("mobile")
    wait_for_status(lambda: collector.post("/v1/events", json.dumps(event()).encode(), again), 202, timeout=10)


def test_mistakes_are_one_line_errors(settings: Settings) -> None:
    create_key("web")
    cases = [
        ("create", "web"),  # a live key has that name
        ("create", "bad name"),
        ("create", "site", "--origin", "shop.example"),
        ("revoke", "nobody"),
    ]
    for args in cases:
        result = run_command("collector.keys", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert run_command("collector.keys", "create", "site", "--rate", "0").returncode == 2  # argparse
    assert query(settings, "SELECT count(*) FROM collector_write_keys") == [(1,)]


def test_help_documents_the_rate_default() -> None:
    result = run_command("collector.keys", "create", "--help")
    assert result.returncode == 0
    assert "requests per second" in result.stdout and "default: 200" in result.stdout
    assert run_command("collector.keys", "--help").returncode == 0
