"""docker-compose.yml matches the configuration defaults (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from core import db
from core.config import DEFAULTS, LOGIN_PASSWORD_VARIABLES
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
        assert (url.path, url.hostname, url.port) == (urlsplit(DEFAULTS["DATABASE_URL"]).path, "postgres", 5432)
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


# What each module connects as (core.db.connect(role=...)): the service running it gets that
# login's password and no other, nor the owner's.
LOGIN_OF_MODULE = {
    "consumers.store_raw_events": db.INGEST_ROLE,
    "consumers.streaming_metrics": db.INGEST_ROLE,
    "data_generators.generate_events": db.ANALYTICS_ROLE,
    "collector": db.COLLECTOR_ROLE,
    "gdpr.api": db.PRIVACY_API_ROLE,
    "console": db.CONSOLE_ROLE,
    "gdpr.process_privacy_requests": db.GDPR_ROLE,
    "reports.generate_daily_report": db.ANALYTICS_ROLE,
    "reports.gdpr_audit_report": db.AUDITOR_ROLE,
    "batch.batch_metrics": db.BATCH_ROLE,
    "batch.compare_batch_vs_stream": db.BATCH_ROLE,
    "devstack.mail": None,  # the development mail server: no database at all
}


def password_variable(role: str) -> str:
    return LOGIN_PASSWORD_VARIABLES[db.LOGINS[role]]


def test_each_service_logs_in_as_its_own_component_with_only_its_password() -> None:
    owner = urlsplit(DEFAULTS["DATABASE_URL"])
    services = {name: s for name, s in SERVICES.items() if "build" in s and name != "init"}
    assert {"raw-consumer", "streaming-consumer", "generator", "collector"} <= set(services)
    for name, service in services.items():
        module = service["command"][2]
        assert module in LOGIN_OF_MODULE, f"{name} runs {module}: which login does it use?"
        env = service.get("environment", {})
        given = {key for key in env if key.startswith("DB_PASSWORD_")}
        role = LOGIN_OF_MODULE[module]
        assert given == (set() if role is None else {password_variable(role)}), name
        if role is None:
            assert "DATABASE_URL" not in env, name
            continue
        url = urlsplit(env["DATABASE_URL"])
        assert url.username is None and url.password is None, f"{name} must not get the owner's login"
        assert str(owner.password) not in str(env), name


def test_init_migrates_as_the_owner_and_sets_every_logins_password() -> None:
    env = SERVICES["init"]["environment"]
    url = urlsplit(env["DATABASE_URL"])
    default = urlsplit(DEFAULTS["DATABASE_URL"])
    assert (url.username, url.password, url.hostname, url.path) == (default.username, default.password, "postgres", default.path)
    for variable in LOGIN_PASSWORD_VARIABLES.values():
        # The operator's value when set, else the same public default as core.config.
        assert env[variable] == f"${{{variable}:-{DEFAULTS[variable]}}}"
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if key.startswith("DB_PASSWORD_"):
                assert value == env[key], f"{name}: {key}"


# -- the privacy API and its mail ---------------------------------------------------------------


def test_the_privacy_api_listens_on_its_default_port_and_mails_through_the_mail_service() -> None:
    api, mail = SERVICES["privacy-api"], SERVICES["mail"]
    assert api["command"] == ["python", "-m", "gdpr.api", "--host", "0.0.0.0"]  # noqa: S104 - inside its container
    assert api["profiles"] == ["app"] and api["build"] == "."
    port = DEFAULTS["PRIVACY_API_PORT"]
    assert f"{port}:{port}" in api["ports"] and f"127.0.0.1:{port}/readyz" in str(api["healthcheck"]["test"])
    env = api["environment"]
    assert env["SMTP_HOST"] == "${SMTP_HOST:-mail}" and env["SMTP_PORT"] == f"${{SMTP_PORT:-{DEFAULTS['SMTP_PORT']}}}"
    assert env["SMTP_PASSWORD"] == "${SMTP_PASSWORD:-}"  # no password of any kind in the file
    assert api["depends_on"]["mail"] == {"condition": "service_started"}
    assert mail["build"] == "." and mail["command"][:3] == ["python", "-m", "devstack.mail"]
    assert mail["command"][mail["command"].index("--port") + 1] == DEFAULTS["SMTP_PORT"]
    mail_dir = mail["command"][mail["command"].index("--dir") + 1]
    assert any(v.endswith(f":{mail_dir}") for v in mail["volumes"])


def test_the_privacy_api_reads_the_exports_where_the_processor_writes_them() -> None:
    assert "reports:/app/reports/output" in SERVICES["privacy-api"]["volumes"]
    assert DEFAULTS["REPORTS_DIR"] == "reports/output"
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert "COPY devstack ./devstack" in dockerfile and "COPY gdpr ./gdpr" in dockerfile
