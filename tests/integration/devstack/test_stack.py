"""The embedded stack's commands, the ports it keeps, where the public GDPR key is accepted, and
the guard against offsets of a topic that no longer exists."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import devstack
from core import kafka
from core.config import DEFAULTS, LOGIN_PASSWORD_VARIABLES, Settings, load_kafka_settings, read_env_file
from devstack import stack as devstack_stack
from tests.helpers import RAW, query, run_command, start_service

pytestmark = pytest.mark.integration


def test_up_twice_is_harmless_and_reports_the_same_urls(settings: Settings) -> None:
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("only for the embedded stack")
    first = run_command("devstack", "up", "--data-dir", data_dir, "--fast")
    second = run_command("devstack", "up", "--data-dir", data_dir, "--fast")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    assert settings.database.url in first.stdout and settings.kafka.bootstrap_servers in first.stdout
    assert "already running" in second.stderr
    status = run_command("devstack", "status", "--data-dir", data_dir)
    assert "PostgreSQL: running on" in status.stdout and "Kafka:      running on" in status.stdout
    assert "Mail:       running on" in status.stdout
    assert f"each message written to {Path(data_dir) / 'mail'}/" in first.stdout
    recorded = read_env_file(Path(data_dir) / "stack.env")
    assert set(recorded) == {
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "SMTP_HOST",
        "SMTP_PORT",
        *LOGIN_PASSWORD_VARIABLES.values(),
    }


# -- the ports a stack chose are its ports ----------------------------------------------------


def listening() -> socket.socket:
    """A socket listening on a free port: somebody else's server on a "default" port."""
    busy = socket.socket()
    busy.bind((devstack.HOST, 0))
    busy.listen()
    return busy


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Path]:
    """A data dir for a second embedded stack, stopped at the end whatever happened."""
    data_dir = tmp_path / "own-stack"
    try:
        yield data_dir
    finally:
        devstack.down(data_dir)


def ports(info: devstack.StackInfo) -> tuple[int | None, int]:
    return urlsplit(info.database_url).port, int(info.kafka_bootstrap.rsplit(":", 1)[1])


def recorded(info: devstack.StackInfo) -> dict[str, int | None]:
    """What ports.env must hold for this stack."""
    return {**dict(zip(("POSTGRES_PORT", "KAFKA_PORT"), ports(info), strict=True)), "SMTP_PORT": info.smtp_port}


@pytest.mark.slow
def test_a_stack_comes_back_on_the_ports_it_chose(own_stack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default ports taken at the first start, free at the next: the stack must not move there,
    or running consumers would retry the old URL forever."""
    pg_default, kafka_default, smtp_default = listening(), listening(), listening()
    # The compose defaults stand in for ports this test holds, so a developer's 5432 is never touched.
    monkeypatch.setattr(devstack_stack, "DEFAULT_PG_PORT", pg_default.getsockname()[1])
    monkeypatch.setattr(devstack_stack, "DEFAULT_KAFKA_PORT", kafka_default.getsockname()[1])
    monkeypatch.setattr(devstack_stack, "DEFAULT_SMTP_PORT", smtp_default.getsockname()[1])
    with pg_default, kafka_default, smtp_default:
        first = devstack.up(own_stack, fast=True)
        assert ports(first) != (pg_default.getsockname()[1], kafka_default.getsockname()[1])
        assert first.smtp_port != smtp_default.getsockname()[1]
        assert devstack.recorded_ports(own_stack) == recorded(first)
    assert devstack.mail_port(own_stack) == first.smtp_port
    assert devstack.down(own_stack) == (True, True)
    assert devstack.mail_port(own_stack) is None
    assert not (own_stack / "stack.env").exists()

    second = devstack.up(own_stack, fast=True)

    assert (second.database_url, second.kafka_bootstrap) == (first.database_url, first.kafka_bootstrap)
    assert devstack.status(own_stack) == ports(first)
    assert second.smtp_port == first.smtp_port
    assert f"DATABASE_URL={first.database_url}" in (own_stack / "stack.env").read_text()
    # A stack found running (started before its ports were recorded) has them recorded now.
    (own_stack / devstack.PORTS_FILE).unlink()
    devstack.up(own_stack, fast=True)
    assert devstack.recorded_ports(own_stack) == recorded(first)


@pytest.mark.slow
def test_make_up_creates_the_topic_the_settings_name(own_stack: Path) -> None:
    """EVENTS_TOPIC and EVENTS_TOPIC_PARTITIONS, as the configuration table promises."""
    result = run_command(
        "devstack",
        "up",
        "--data-dir",
        str(own_stack),
        "--fast",
        env={"EVENTS_TOPIC": "shop_events", "EVENTS_TOPIC_PARTITIONS": "5"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bootstrap = read_env_file(own_stack / "stack.env")["KAFKA_BOOTSTRAP_SERVERS"]
    assert kafka.partitions_of(load_kafka_settings(bootstrap), "shop_events") == [0, 1, 2, 3, 4]


def test_a_recorded_port_taken_by_another_program_is_one_clear_line(own_stack: Path) -> None:
    own_stack.mkdir()
    with listening() as busy:
        taken = busy.getsockname()[1]
        (own_stack / devstack.PORTS_FILE).write_text(f"POSTGRES_PORT={taken}\nKAFKA_PORT={devstack.free_port()}\n")
        result = run_command("devstack", "up", "--data-dir", str(own_stack), "--fast")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert f"port {taken}" in line and str(own_stack / devstack.PORTS_FILE) in line and "delete" in line
    assert devstack.status(own_stack) == (None, None)


# -- the public GDPR key ----------------------------------------------------------------------


def test_the_public_gdpr_key_is_accepted_on_the_embedded_stack_only(settings: Settings) -> None:
    if not os.environ.get("TEST_STACK_DATA_DIR"):
        pytest.skip("only for the embedded stack")
    default_key = {"GDPR_HMAC_KEY": DEFAULTS["GDPR_HMAC_KEY"]}
    on_the_stack = run_command("gdpr.process_privacy_requests", env=default_key)
    assert on_the_stack.returncode == 0, on_the_stack.stderr
    elsewhere = run_command(
        "gdpr.process_privacy_requests", env={**default_key, "DATABASE_URL": "postgresql://de_user:secret@127.0.0.1:1/de_db"}
    )
    assert elsewhere.returncode == 2 and "Traceback" not in elsewhere.stderr
    [line] = [line for line in elsewhere.stderr.splitlines() if line.startswith("error:")]
    assert "GDPR_HMAC_KEY is the public development default" in line and "de_user:secret" not in elsewhere.stderr


# -- a topic the broker lost ------------------------------------------------------------------


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
