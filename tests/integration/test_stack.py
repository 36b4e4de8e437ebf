"""The embedded stack's commands, and the guard against offsets of a topic that no longer exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import Settings
from tests.helpers import RAW, query, run_command, start_service

pytestmark = pytest.mark.integration


def test_up_twice_is_harmless_and_reports_the_same_urls(settings: Settings) -> None:
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("only for the embedded stack")
    first = run_command("core.stack", "up", "--data-dir", data_dir, "--fast")
    second = run_command("core.stack", "up", "--data-dir", data_dir, "--fast")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert settings.database.url in first.stdout and settings.kafka.bootstrap_servers in first.stdout
    assert "already running" in second.stderr
    status = run_command("core.stack", "status", "--data-dir", data_dir)
    assert "PostgreSQL: running on" in status.stdout and "Kafka:      running on" in status.stdout
    assert (Path(data_dir) / "stack.env").read_text().count("=") == 2


def test_consumer_refuses_offsets_beyond_the_log(settings: Settings, group: str, tmp_path: Path) -> None:
    """After a broker restart the topic starts again at 0; stored offsets past its end must not
    make the consumer silently skip the new messages."""
    query(
        settings,
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) VALUES (%s, %s, 0, 5000)",
        (f"raw-{group}", settings.kafka.topic),
    )
    service = start_service(RAW, f"raw-{group}", tmp_path)
    code = service.process.wait(timeout=60)
    assert code == 2
    assert "the topic was recreated" in service.output() and "Traceback" not in service.output()
