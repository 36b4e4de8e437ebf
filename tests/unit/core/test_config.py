"""Settings: defaults equal docker-compose's, the stack file fills in, the environment wins."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core import config
from core.config import DEFAULTS, load_settings, mask_url
from core.errors import ConfigError

SECRET = "unit-test-secret"
EMBEDDED_URL = "postgresql://de_user:de_password@127.0.0.1:6000/de_db"


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    """An environment without a stack file and with a key of its own, plus ``values``."""
    return {"STACK_FILE": str(tmp_path / "absent.env"), "GDPR_HMAC_KEY": SECRET, **values}


def embedded(tmp_path: Path) -> Path:
    """A stack file as `make up` writes it."""
    stack = tmp_path / "stack.env"
    stack.write_text(
        f"# Written by `python -m devstack up`\nDATABASE_URL={EMBEDDED_URL}\nKAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9999\n"
    )
    return stack


def test_defaults_are_the_compose_defaults(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path))
    assert settings.database.url == "postgresql://de_user:de_password@localhost:5432/de_db"
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert settings.kafka.topic == "user_events" and settings.kafka.partitions == 3
    assert config.default_login() == ("de_user", "de_password", "de_db")


def test_stack_file_overrides_defaults_and_environment_overrides_both(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path, STACK_FILE=str(embedded(tmp_path)), KAFKA_BOOTSTRAP_SERVERS="broker:1"))
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
        ("RAW_EVENTS_GROUP", " ", "RAW_EVENTS_GROUP is empty"),
        ("GDPR_HMAC_KEY", " ", "GDPR_HMAC_KEY is empty"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        # The key is checked where it is used; everything else at load time.
        _ = load_settings(env(tmp_path, **{key: value})).gdpr_hmac_key


def test_passwords_are_masked_in_logs(tmp_path: Path) -> None:
    assert mask_url("postgresql://de_user:s3cret@db:5432/de_db") == "postgresql://de_user:***@db:5432/de_db"
    settings = load_settings(env(tmp_path, DATABASE_URL="postgresql://a:s3cret@h/d"))
    assert "s3cret" not in settings.describe() and SECRET not in settings.describe()


# -- the GDPR key: a public default makes proof hashes forgeable ------------------------------


def test_the_public_default_key_is_refused_off_the_embedded_stack(tmp_path: Path) -> None:
    # Every other setting still loads: consumers, generator and reports never use the key.
    settings = load_settings({"STACK_FILE": str(tmp_path / "absent.env")})
    with pytest.raises(ConfigError) as raised:
        _ = settings.gdpr_hmac_key
    message = str(raised.value)
    assert message.startswith("GDPR_HMAC_KEY is the public development default") and "openssl rand" in message
    assert "\n" not in message and DEFAULTS["GDPR_HMAC_KEY"] not in message


def test_the_default_key_is_refused_when_the_url_in_effect_is_not_the_embedded_stacks(tmp_path: Path) -> None:
    """A developer who ran `make up` and then points DATABASE_URL at a shared server."""
    elsewhere = "postgresql://de_user:de_password@db.internal:5432/de_db"
    with pytest.raises(ConfigError, match="GDPR_HMAC_KEY is the public development default"):
        _ = load_settings({"STACK_FILE": str(embedded(tmp_path)), "DATABASE_URL": elsewhere}).gdpr_hmac_key
    explicit = {"STACK_FILE": str(embedded(tmp_path)), "DATABASE_URL": elsewhere, "GDPR_HMAC_KEY": "dev-only-change-me"}
    with pytest.raises(ConfigError, match="GDPR_HMAC_KEY"):
        _ = load_settings(explicit).gdpr_hmac_key


def test_the_default_key_is_accepted_on_the_embedded_stack(tmp_path: Path) -> None:
    stack = str(embedded(tmp_path))
    assert load_settings({"STACK_FILE": stack}).gdpr_hmac_key == DEFAULTS["GDPR_HMAC_KEY"].encode()
    assert load_settings({"STACK_FILE": stack, "DATABASE_URL": EMBEDDED_URL}).database.url == EMBEDDED_URL
    assert config.on_embedded_stack({"STACK_FILE": stack})


def test_a_key_that_is_set_is_accepted_anywhere(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path, DATABASE_URL="postgresql://u:p@db.internal/prod"))
    assert settings.gdpr_hmac_key == SECRET.encode()
    assert not config.on_embedded_stack(env(tmp_path))


# -- consumer groups and log levels -----------------------------------------------------------


def test_consumer_groups_have_defaults_and_come_from_the_environment(tmp_path: Path) -> None:
    groups = load_settings(env(tmp_path)).groups
    assert (groups.raw_events, groups.streaming_metrics) == ("raw-events-sink", "streaming-metrics")
    groups = load_settings(env(tmp_path, RAW_EVENTS_GROUP="raw-blue", STREAMING_GROUP="stream-blue")).groups
    assert (groups.raw_events, groups.streaming_metrics) == ("raw-blue", "stream-blue")


def test_log_level_is_case_insensitive(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).log_level == "INFO"
    assert load_settings(env(tmp_path, LOG_LEVEL="debug")).log_level == "DEBUG"


def test_log_level_alone_for_entry_points_without_settings(tmp_path: Path) -> None:
    """The embedded stack and the demo set up logging before any URL is recorded."""
    assert config.log_level(env(tmp_path)) == "INFO"
    assert config.log_level(env(tmp_path), default="WARNING") == "WARNING"
    assert config.log_level(env(tmp_path, LOG_LEVEL="error"), default="WARNING") == "ERROR"
    with pytest.raises(ConfigError, match="LOG_LEVEL='LOUD' is not one of DEBUG, INFO, WARNING, ERROR"):
        config.log_level(env(tmp_path, LOG_LEVEL="loud"))


def test_narrow_loaders_use_the_configured_timeouts(tmp_path: Path) -> None:
    database = config.load_database_settings(EMBEDDED_URL, env(tmp_path, DB_STATEMENT_TIMEOUT_MS="1500"))
    assert (database.url, database.statement_timeout_ms) == (EMBEDDED_URL, 1500)
    kafka = config.load_kafka_settings("127.0.0.1:1", env(tmp_path, EVENTS_TOPIC="t"))
    assert (kafka.bootstrap_servers, kafka.topic, kafka.partitions) == ("127.0.0.1:1", "t", 3)


def test_a_relative_reports_dir_is_taken_from_the_project_root(tmp_path: Path) -> None:
    relative = load_settings(env(tmp_path, GDPR_HMAC_KEY="k", REPORTS_DIR="reports/output"))
    assert relative.reports_dir == config.PROJECT_ROOT / "reports" / "output"
    absolute = load_settings(env(tmp_path, GDPR_HMAC_KEY="k", REPORTS_DIR=str(tmp_path / "out")))
    assert absolute.reports_dir == tmp_path / "out"


def test_the_retry_budget_is_a_positive_number(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path, GDPR_HMAC_KEY="k", DB_RETRY_TIMEOUT_S="2.5")).database.retry_timeout_s == 2.5
    with pytest.raises(ConfigError, match="DB_RETRY_TIMEOUT_S"):
        load_settings(env(tmp_path, GDPR_HMAC_KEY="k", DB_RETRY_TIMEOUT_S="soon"))


@pytest.mark.parametrize("value", ["", "abc", "0", "-5", "NaN", "1.001", "10000000000", "1e400"])
def test_a_maximum_event_amount_that_is_no_amount_or_beyond_events_raw_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="MAX_EVENT_AMOUNT"):
        load_settings({"MAX_EVENT_AMOUNT": value})


def test_the_maximum_event_amount_reaches_the_consumers_and_the_collector() -> None:
    settings = load_settings({"MAX_EVENT_AMOUNT": "2500"})
    assert settings.max_event_amount == settings.collector.max_event_amount == Decimal("2500.00")
    assert load_settings({}).max_event_amount == Decimal("1000000.00")
