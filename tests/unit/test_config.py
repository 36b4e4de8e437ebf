"""Settings: defaults equal docker-compose's, the stack file fills in, the environment wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_settings, mask_url
from core.errors import ConfigError


def test_defaults_are_the_compose_defaults(tmp_path: Path) -> None:
    settings = load_settings({"STACK_FILE": str(tmp_path / "absent.env")})
    assert settings.database.url == "postgresql://de_user:de_password@localhost:5432/de_db"
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert settings.kafka.topic == "user_events" and settings.kafka.partitions == 3


def test_stack_file_overrides_defaults_and_environment_overrides_both(tmp_path: Path) -> None:
    stack = tmp_path / "stack.env"
    stack.write_text("# comment\nDATABASE_URL=postgresql://u:p@127.0.0.1:6000/de_db\nKAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9999\n")
    settings = load_settings({"STACK_FILE": str(stack), "KAFKA_BOOTSTRAP_SERVERS": "broker:1"})
    assert settings.database.url.endswith(":6000/de_db")
    assert settings.kafka.bootstrap_servers == "broker:1"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL must start with postgresql://"),
        ("SINK_BATCH_SIZE", "0", "SINK_BATCH_SIZE=0 must be at least 1"),
        ("SINK_BATCH_SECONDS", "soon", "SINK_BATCH_SECONDS='soon' is not a number"),
        ("EVENTS_TOPIC", " ", "EVENTS_TOPIC is empty"),
        ("LOG_LEVEL", "chatty", "LOG_LEVEL='CHATTY'"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings({"STACK_FILE": str(tmp_path / "absent.env"), key: value})


def test_passwords_are_masked_in_logs(tmp_path: Path) -> None:
    assert mask_url("postgresql://de_user:s3cret@db:5432/de_db") == "postgresql://de_user:***@db:5432/de_db"
    settings = load_settings({"STACK_FILE": str(tmp_path / "absent.env"), "DATABASE_URL": "postgresql://a:s3cret@h/d"})
    assert "s3cret" not in settings.describe()
