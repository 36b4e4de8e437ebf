"""docker-compose.yml and the Dockerfile match the configuration defaults and each other (no
Docker engine needed: the files are parsed, never run)."""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml

from core import db, metrics
from core.config import DEFAULTS, LOGIN_PASSWORD_VARIABLES, PROJECT_ROOT
from devstack import SERVER_TUNING
from scheduler.jobs import job_modules

COMPOSE_TEXT = (PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
# The services built from the Dockerfile, each running one module with `python -m`.
BUILT = {name: service for name, service in SERVICES.items() if service.get("build") == "."}


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
    # 17: the GDPR processor's VACUUM after an erasure needs the MAINTAIN privilege (sql/014).
    assert pg["image"] == "postgres:17"
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
        "gdpr-processor": "gdpr.process_privacy_requests",
        "scheduler": "scheduler",
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
    processor, the privacy API and the console refuse) and never the public development default."""
    for name in ("init", "raw-consumer", "streaming-consumer", "generator", "gdpr-processor", "privacy-api", "console"):
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
    "gdpr.person_days": db.GDPR_ROLE,
    "reports.generate_daily_report": db.ANALYTICS_ROLE,
    "reports.gdpr_audit_report": db.AUDITOR_ROLE,
    "gdpr.verify_audit": db.AUDITOR_ROLE,
    "batch.batch_metrics": db.BATCH_ROLE,
    "batch.compare_batch_vs_stream": db.BATCH_ROLE,
    "gdpr.retention": db.RETENTION_ROLE,
    "scheduler": db.SCHEDULER_ROLE,
    "dashboard": db.DASHBOARD_ROLE,
    "analytics.api": db.ANALYSTS_API_ROLE,
    "analytics.rfm": db.ANALYTICS_MODEL_ROLE,
    "analytics.clv": db.ANALYTICS_MODEL_ROLE,
    "devstack.mail": None,  # the development mail server: no database at all
}
# A service that runs other commands as subprocesses (the scheduler's jobs), each logging in as its
# own component: it needs their logins' passwords too, and nothing more.
SUBPROCESSES_OF_MODULE = {"scheduler": job_modules()}


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
        runs = {password_variable(str(LOGIN_OF_MODULE[job])) for job in SUBPROCESSES_OF_MODULE.get(module, ())}
        assert given == (set() if role is None else {password_variable(role)}) | runs, name
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
    assert api["command"][:5] == ["python", "-m", "gdpr.api", "--host", "0.0.0.0"]  # noqa: S104 - inside its container
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


# -- the GDPR processor -------------------------------------------------------------------------


def test_the_gdpr_processor_runs_as_a_service_watching_for_requests() -> None:
    processor = SERVICES["gdpr-processor"]
    assert processor["command"][:4] == ["python", "-m", "gdpr.process_privacy_requests", "--watch"]
    assert processor["profiles"] == ["app"] and processor["build"] == "."
    assert processor["restart"] == "unless-stopped"
    assert processor["depends_on"]["init"] == {"condition": "service_completed_successfully"}
    assert "kafka" not in processor["depends_on"]  # it reads and writes PostgreSQL only
    env = processor["environment"]
    assert {key for key in env if key.startswith("DB_PASSWORD_")} == {password_variable(db.GDPR_ROLE)} == {"DB_PASSWORD_GDPR"}
    assert env["GDPR_HMAC_KEY"] == "${GDPR_HMAC_KEY:-}"  # required: refused when empty, never defaulted here


def test_the_gdpr_processor_mails_through_the_mail_service_as_the_privacy_api_does() -> None:
    processor, api, mail = SERVICES["gdpr-processor"], SERVICES["privacy-api"], SERVICES["mail"]
    env = processor["environment"]
    assert env["SMTP_HOST"] == "${SMTP_HOST:-mail}"
    assert env["SMTP_PORT"] == f"${{SMTP_PORT:-{mail['command'][mail['command'].index('--port') + 1]}}}"
    assert processor["depends_on"]["mail"] == {"condition": "service_started"}
    # The same relay, sender and public address (the completion notice names the export's URL).
    mail_settings = {key for key in api["environment"] if key.startswith("SMTP_")} | {"PRIVACY_API_PUBLIC_URL"}
    assert {key: env[key] for key in mail_settings} == {key: api["environment"][key] for key in mail_settings}


def test_the_privacy_api_reads_the_exports_where_the_processor_writes_them() -> None:
    """Both mount the `reports` volume at REPORTS_DIR under the image's working directory, and run
    as the image's one user: the exports are written 0600, and the API reads and deletes them."""
    workdir = re.search(r"^WORKDIR\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert workdir is not None
    reports_dir = PurePosixPath(workdir.group(1)) / DEFAULTS["REPORTS_DIR"]
    for name in ("privacy-api", "gdpr-processor"):
        service = SERVICES[name]
        assert f"reports:{reports_dir}" in service["volumes"], name
        assert "REPORTS_DIR" not in service["environment"], name
        assert "user" not in service, f"{name} must run as the Dockerfile's USER, as the other one does"
    assert "reports" in COMPOSE["volumes"]
    assert re.search(r"^USER app$", DOCKERFILE, re.MULTILINE)
    # A fixed uid: every service builds its own image from the Dockerfile, all with the same owner.
    assert re.search(r"useradd .*--uid \d+ app\b", DOCKERFILE)


# -- retention ----------------------------------------------------------------------------------


def test_kafka_keeps_the_events_as_long_as_the_topic_the_platform_creates_says() -> None:
    """The broker's default and the events topic's own retention.ms (set by `init`, core.kafka)
    come from one variable, with core.config's default."""
    variable = f"${{KAFKA_RETENTION_HOURS:-{DEFAULTS['KAFKA_RETENTION_HOURS']}}}"
    assert SERVICES["kafka"]["environment"]["KAFKA_LOG_RETENTION_HOURS"] == variable
    assert SERVICES["init"]["environment"]["KAFKA_RETENTION_HOURS"] == variable


def test_retention_is_a_one_off_job_that_reaches_the_report_files_and_exports() -> None:
    job = SERVICES["retention"]
    assert job["command"] == ["python", "-m", "gdpr.retention"]
    assert job["profiles"] == ["jobs"] and job["restart"] == "no"  # `up --profile app` leaves it alone
    assert job["volumes"] == SERVICES["gdpr-processor"]["volumes"]
    env = job["environment"]
    for variable in ("RETENTION_DAYS", "DEAD_LETTER_RETENTION_DAYS", "ACCESS_EXPORT_DAYS", "PRIVACY_REQUEST_RETENTION_DAYS",
                     "REPORT_RETENTION_DAYS", "KAFKA_RETENTION_HOURS"):  # fmt: skip
        assert env[variable] == f"${{{variable}:-{DEFAULTS[variable]}}}", variable
    assert ("retention", "gdpr.retention") in re.findall(r"docker compose run --rm ([\w-]+) python -m ([\w.]+)", COMPOSE_TEXT)


# -- the scheduler ------------------------------------------------------------------------------


def test_the_scheduler_runs_as_a_service_with_its_settings_and_what_its_jobs_need() -> None:
    scheduler = SERVICES["scheduler"]
    assert scheduler["command"] == ["python", "-m", "scheduler", "--metrics-port", str(metrics.DEFAULT_PORTS["scheduler"])]
    assert scheduler["profiles"] == ["app"] and scheduler["build"] == "." and scheduler["restart"] == "unless-stopped"
    assert scheduler["depends_on"]["init"] == {"condition": "service_completed_successfully"}
    env = scheduler["environment"]
    settings = [key for key in DEFAULTS if key.startswith("SCHEDULER_")]
    assert len(settings) == 11
    # Every setting of the scheduler and of the retention it runs, with core.config's default.
    for variable in [*settings, "RETENTION_DAYS", "DEAD_LETTER_RETENTION_DAYS", "ACCESS_EXPORT_DAYS",
                     "PRIVACY_REQUEST_RETENTION_DAYS", "REPORT_RETENTION_DAYS", "REPORT_MIN_CELL_USERS"]:  # fmt: skip
        assert env[variable] == f"${{{variable}:-{DEFAULTS[variable]}}}", variable
    # The reports it runs write where the processor's exports are; retention removes old ones there.
    assert scheduler["volumes"] == SERVICES["gdpr-processor"]["volumes"]
    shown = re.findall(r"docker compose run --rm scheduler python -m (scheduler [\w-]+)", COMPOSE_TEXT)
    assert shown == ["scheduler status", "scheduler run-once"]


def test_the_image_holds_every_command_the_scheduler_runs() -> None:
    copied = copied_into_image()
    for module in sorted(job_modules()):
        missing = needed_in_image(module) - copied
        assert not missing, f"the scheduler runs {module}, which needs {sorted(missing)}: COPY them in the Dockerfile"


# -- the image holds what the services run --------------------------------------------------------


def copied_into_image() -> set[str]:
    """What the Dockerfile's COPY lines put into the image, relative to its working directory."""
    copied: set[str] = set()
    for line in DOCKERFILE.splitlines():
        words = [word for word in line.split() if not word.startswith("--")]  # --chown=... and the like
        if words[:1] != ["COPY"]:
            continue
        *sources, target = words[1:]
        for source in sources:
            path = PurePosixPath(target) / PurePosixPath(source).name if target.endswith("/") else PurePosixPath(target)
            copied.add(path.as_posix())
    return copied


TOP_LEVEL = {p.name for p in PROJECT_ROOT.iterdir() if (p / "__init__.py").is_file()} | {
    p.stem for p in PROJECT_ROOT.glob("*.py")
}


def module_files(name: str, *, run: bool = False) -> list[Path]:
    """The project's files Python executes to import ``name`` (its packages' ``__init__`` too), and
    with ``run`` to run it with ``python -m`` (a package's ``__main__``). None for a library's module
    or for an attribute (``from core.db import connect`` names ``core.db.connect``)."""
    parts = name.split(".")
    if parts[0] not in TOP_LEVEL:
        return []
    files: list[Path] = []
    for depth in range(1, len(parts) + 1):
        base = PROJECT_ROOT.joinpath(*parts[:depth])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif base.with_suffix(".py").is_file():
            return [*files, base.with_suffix(".py")]
        else:
            return files
    main = PROJECT_ROOT.joinpath(*parts, "__main__.py")
    return [*files, main] if run and main.is_file() else files


def imported_names(path: Path) -> set[str]:
    """Every dotted name a file imports, anywhere in it (function-level imports too)."""
    names: set[str] = set()
    package = path.relative_to(PROJECT_ROOT).parent.parts
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def needed_in_image(module: str) -> set[str]:
    """The top-level packages and modules ``python -m module`` imports, transitively."""
    todo, seen = module_files(module, run=True), set[Path]()
    assert todo, f"{module} is not a module of this project"
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(f for name in imported_names(path) for f in module_files(name))
    return {path.relative_to(PROJECT_ROOT).parts[0] for path in seen}


def test_the_image_holds_every_module_a_service_runs_and_what_it_imports() -> None:
    copied = copied_into_image()
    assert {"mail", "init", "console", "gdpr-processor"} <= set(BUILT)
    for name, service in BUILT.items():
        command = service["command"]
        assert command[:2] == ["python", "-m"], f"{name}: a service runs a module of the image"
        missing = needed_in_image(command[2]) - copied
        assert not missing, f"{name} runs {command[2]}, which needs {sorted(missing)}: COPY them in the Dockerfile"
    # The migrator (`init`) reads the schema from sql/ beside the packages.
    assert db.SQL_DIR.relative_to(PROJECT_ROOT).as_posix() in copied


def test_the_one_off_commands_the_compose_file_shows_run_in_a_service_that_can() -> None:
    """`docker compose run --rm SERVICE python -m MODULE` in the file's comments works: the image
    holds the module and the service gives it its login's password (init: the owner's)."""
    shown = re.findall(r"docker compose run --rm ([\w-]+) python -m ([\w.]+)", COMPOSE_TEXT)
    # Accounts are the owner's to create (sql/031): the console's own login may not.
    assert ("init", "console.accounts") in shown
    copied = copied_into_image()
    for name, module in shown:
        assert name in BUILT, f"`docker compose run {name}`: no such service built from the Dockerfile"
        missing = needed_in_image(module) - copied
        assert not missing, f"{module} (in {name}) needs {sorted(missing)}: COPY them in the Dockerfile"
        env = BUILT[name]["environment"]
        if name == "init":
            assert urlsplit(env["DATABASE_URL"]).username == urlsplit(DEFAULTS["DATABASE_URL"]).username
        else:
            role = LOGIN_OF_MODULE.get(module)
            assert role is not None, f"{module}: which login does it use?"
            assert password_variable(role) in env, f"{module} in {name}"


# -- the live dashboard -------------------------------------------------------------------------


def test_the_dashboard_listens_on_its_default_port_published_on_the_hosts_loopback_only() -> None:
    dashboard = SERVICES["dashboard"]
    assert dashboard["command"] == ["python", "-m", "dashboard", "--host", "0.0.0.0"]  # noqa: S104 - inside its container
    assert dashboard["profiles"] == ["app"] and dashboard["build"] == "." and dashboard["restart"] == "unless-stopped"
    assert dashboard["depends_on"]["init"] == {"condition": "service_completed_successfully"}
    port = DEFAULTS["DASHBOARD_PORT"]
    assert dashboard["ports"] == [f"127.0.0.1:{port}:{port}"]  # an internal page without a login of its own
    assert f"127.0.0.1:{port}/healthz" in str(dashboard["healthcheck"]["test"])
    env = dashboard["environment"]
    assert {key for key in env if key.startswith("DB_PASSWORD_")} == {password_variable(db.DASHBOARD_ROLE)}
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"  # the lag: Kafka's end offsets


# -- metrics and monitoring ---------------------------------------------------------------------

PROMETHEUS_DIR = PROJECT_ROOT / "ops" / "prometheus"


def scraped(config_file: str) -> dict[str, list[str]]:
    """Job name -> targets of a Prometheus configuration of ops/prometheus."""
    config = yaml.safe_load((PROMETHEUS_DIR / config_file).read_text(encoding="utf-8"))
    return {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]] for job in config["scrape_configs"]
    }


def metrics_port(service: dict[str, object]) -> int | None:
    command = service["command"]
    assert isinstance(command, list)
    return int(command[command.index("--metrics-port") + 1]) if "--metrics-port" in command else None


# The services that serve metrics: every one running a module with a default metrics port.
WITH_METRICS = {name: s for name, s in BUILT.items() if s["command"][2] in metrics.DEFAULT_PORTS}


def test_every_long_running_service_serves_metrics_on_its_default_port() -> None:
    assert {"raw-consumer", "streaming-consumer", "gdpr-processor", "collector", "privacy-api", "console"} <= set(WITH_METRICS)
    for name, service in BUILT.items():
        module, port = service["command"][2], metrics_port(service)
        if name in WITH_METRICS:
            assert port == metrics.DEFAULT_PORTS[module], f"{name}: --metrics-port {port}"
            # Inside its container, where Prometheus reaches it; the port is not published.
            assert service["environment"]["METRICS_HOST"] == "0.0.0.0", name  # noqa: S104
            assert all(str(port) not in str(p) for p in service.get("ports", [])), name
        else:
            assert port is None, f"{name} runs {module}, which serves no metrics"


def test_prometheus_in_compose_scrapes_each_service_with_a_metrics_port() -> None:
    jobs = scraped("prometheus-compose.yml")
    expected = {name: [f"{name}:{metrics_port(service)}"] for name, service in WITH_METRICS.items()}
    assert jobs == expected


def test_prometheus_on_this_machine_scrapes_the_same_jobs_at_the_default_ports() -> None:
    """ops/prometheus/prometheus.yml: the same job names as compose's (the alert rules and the
    dashboards select on them), at localhost and each module's default port; and the scheduler."""
    jobs = scraped("prometheus.yml")
    job_of_module = {service["command"][2]: name for name, service in WITH_METRICS.items()} | {"scheduler": "scheduler"}
    assert set(job_of_module) == set(metrics.DEFAULT_PORTS)
    assert jobs == {job: [f"localhost:{metrics.DEFAULT_PORTS[module]}"] for module, job in job_of_module.items()}
    scheduler = next(
        j
        for j in yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"]
        if j["job_name"] == "scheduler"
    )
    assert scheduler["honor_labels"] is True  # its platform_job_* gauges keep their own `job` label


def test_the_monitoring_services_run_under_the_ops_profile_with_the_repositorys_files() -> None:
    for name in ("prometheus", "alertmanager", "grafana"):
        service = SERVICES[name]
        assert service["profiles"] == ["ops"], name
        assert "build" not in service and ":" in service["image"] and not service["image"].endswith(":latest"), name
        assert all(str(port).startswith("127.0.0.1:") for port in service["ports"]), f"{name}: publish on the loopback only"
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    mounted = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["prometheus"]["volumes"]}
    assert mounted["/etc/prometheus/prometheus.yml"] == "./ops/prometheus/prometheus-compose.yml"
    assert mounted["/etc/prometheus/alerts.yml"] == "./ops/prometheus/alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    # Grafana reads PostgreSQL as the reports' read-only login, with that password only.
    grafana = SERVICES["grafana"]["environment"]
    assert {key for key in grafana if key.startswith("DB_PASSWORD_")} == {password_variable(db.ANALYTICS_ROLE)}


# -- healthchecks -------------------------------------------------------------------------------

# One-shot jobs (they exit when done) and the generator (a producer with nothing to ask) have none.
WITHOUT_HEALTHCHECK = {"init", "retention", "generator"}


def test_every_long_running_service_has_a_healthcheck_on_what_it_serves() -> None:
    for name, service in SERVICES.items():
        if name in WITHOUT_HEALTHCHECK:
            assert "healthcheck" not in service, name
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"
    for name, service in WITH_METRICS.items():
        if "healthz" not in str(service["healthcheck"]) and "readyz" not in str(service["healthcheck"]):
            assert f"127.0.0.1:{metrics_port(service)}/metrics" in str(service["healthcheck"]["test"]), name
