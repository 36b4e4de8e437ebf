"""The generator waits out a PostgreSQL outage instead of exiting, as the consumers do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import devstack
from core import kafka
from core.config import Settings
from tests.helpers import read_topic, run_command, start_generator, wait_until

pytestmark = pytest.mark.integration

EVENTS = 2_000
# 20 s of events at 100/s: the outage below lasts a few seconds and ends well before the count.
RATE = 100


def produced(settings: Settings) -> int:
    """Messages in the test's topic (once the generator has stopped)."""
    return sum(kafka.end_offsets(settings.kafka, settings.kafka.topic).values())


@pytest.mark.slow
def test_the_generator_outlives_a_postgres_outage_and_finishes_its_count(settings: Settings, tmp_path: Path) -> None:
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("needs the embedded stack, whose PostgreSQL the test can stop and start")
    assert run_command("data_generators.generate_users", "--count", "10").returncode == 0
    log = tmp_path / "generator.log"
    # Users re-read every 0.2 s rather than 30 s, so the outage is met at once.
    generator = start_generator(log, "--rate", str(RATE), "--count", str(EVENTS), "--refresh-users", "0.2")
    try:
        read_topic(settings, 1)  # past start-up: the users are read, events flow
        assert devstack.stop_postgres(Path(data_dir))
        wait_until(
            lambda: log.read_text().count("cannot re-read the users") >= 2, timeout=30, what="the generator to retry twice"
        )
        assert generator.poll() is None, log.read_text()
    finally:
        devstack.start_postgres(Path(data_dir), None, fast=True)  # on the port recorded for it
    try:
        code = generator.wait(timeout=120)
    finally:
        if generator.poll() is None:
            generator.kill()
    output = log.read_text()
    assert code == 0, output
    assert f"events: {EVENTS:,} delivered" in output and "Traceback" not in output
    assert "(attempt 1)" in output and "(attempt 2)" in output and "next attempt in 1.0 s" in output
    assert "PostgreSQL answers again" in output
    assert produced(settings) == EVENTS
