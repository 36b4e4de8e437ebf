"""docker-compose.yml matches the configuration defaults (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from core.config import DEFAULTS
from devstack import SERVER_TUNING

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_kafka_runs_in_kraft_mode_without_zookeeper_on_the_default_port() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "zookeeper" not in str(COMPOSE).lower()
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    port = DEFAULTS["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1]
    assert f"{port}:{port}" in kafka["ports"]
    assert f"EXTERNAL://localhost:{port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "test" in kafka["healthcheck"]


def test_postgres_matches_the_default_database_url() -> None:
    pg = SERVICES["postgres"]
    assert pg["image"] == "postgres:15"
    url = urlsplit(DEFAULTS["DATABASE_URL"])
    env = pg["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (
        url.username,
        url.password,
        url.path.lstrip("/"),
    )
    assert f"{url.port}:{url.port}" in pg["ports"]
    assert "pg_isready" in str(pg["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])


def test_schema_comes_from_the_project_migrator_after_both_are_healthy() -> None:
    init = SERVICES["init"]
    assert init["command"] == ["python", "-m", "core.init"]
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}, "postgres": {"condition": "service_healthy"}}
    assert not any("sql" in str(v) for v in SERVICES["postgres"].get("volumes", []) if "initdb" in str(v))


def test_app_services_run_under_the_app_profile_from_one_image() -> None:
    expected = {
        "raw-consumer": "consumers.store_raw_events",
        "streaming-consumer": "consumers.streaming_metrics",
        "generator": "data_generators.generate_events",
    }
    for name, module in expected.items():
        service = SERVICES[name]
        assert service["profiles"] == ["app"]
        assert service["build"] == "."
        assert service["command"][:3] == ["python", "-m", module]
        env = service["environment"]
        url = urlsplit(env["DATABASE_URL"])
        default = urlsplit(DEFAULTS["DATABASE_URL"])
        assert (url.username, url.password, url.path, url.hostname) == (
            default.username,
            default.password,
            default.path,
            "postgres",
        )
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"
        assert env["EVENTS_TOPIC"] == DEFAULTS["EVENTS_TOPIC"]
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert "INTERNAL://kafka:29092" in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_postgres_gets_the_embedded_stacks_server_tuning() -> None:
    command = SERVICES["postgres"]["command"]
    assert command[0] == "postgres"
    settings = {command[i + 1] for i in range(1, len(command), 2) if command[i] == "-c"}
    assert settings == {option.removeprefix("-c ") for option in SERVER_TUNING}


def test_compose_up_needs_no_key_and_never_passes_the_public_default() -> None:
    """`docker compose up` works as the design document writes it: no variable is required. The
    services pass GDPR_HMAC_KEY through from the environment (empty when unset, which the GDPR
    processor refuses) and never the public development default."""
    for name in ("init", "raw-consumer", "streaming-consumer", "generator"):
        key = SERVICES[name]["environment"]["GDPR_HMAC_KEY"]
        assert key == "${GDPR_HMAC_KEY:-}"
        assert DEFAULTS["GDPR_HMAC_KEY"] not in key
