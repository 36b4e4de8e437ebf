"""Starting the collector: --help, and one line with exit status 2 when something it needs is missing."""

from __future__ import annotations

import socket
import uuid

import pytest

import devstack
from core.config import Settings
from tests.helpers import run_command

pytestmark = pytest.mark.integration


def assert_one_line_error(args: tuple[str, ...], env: dict[str, str], expected: str) -> None:
    result = run_command("collector", *args, env=env, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


def test_help() -> None:
    result = run_command("collector", "--help")
    assert result.returncode == 0
    assert "--host" in result.stdout and "--port" in result.stdout and "/v1/events" in result.stdout


def test_missing_broker_database_topic_or_port_is_one_line(settings: Settings) -> None:
    closed = str(devstack.free_port())
    assert_one_line_error(("--port", "0"), {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}"}, "Kafka at")
    assert_one_line_error(
        ("--port", "0"), {"DATABASE_URL": f"postgresql://de_user:secret@127.0.0.1:{closed}/de_db"}, "PostgreSQL at"
    )
    missing = f"no_such_topic_{uuid.uuid4().hex[:8]}"
    assert_one_line_error(("--port", "0"), {"EVENTS_TOPIC": missing}, f"topic {missing} does not exist")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        assert_one_line_error(("--port", str(taken.getsockname()[1])), {}, "cannot listen on")
