"""Settings for every module, read from the environment in one place.

Precedence, lowest first: built-in defaults (the same as docker-compose), the URLs the embedded
stack recorded in ``.local/stack.env`` (so nothing needs an ``export``), then the environment.
No other module reads ``os.environ``: entry points that cannot load every setting yet (the
embedded stack before it has recorded its URLs, the demo) use the narrower helpers here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.errors import ConfigError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK_FILE = PROJECT_ROOT / ".local" / "stack.env"

DEFAULTS: dict[str, str] = {
    "DATABASE_URL": "postgresql://de_user:de_password@localhost:5432/de_db",
    "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
    "EVENTS_TOPIC": "user_events",
    "EVENTS_TOPIC_PARTITIONS": "3",
    # 50,000 rows or 1 s per transaction: measured here, the raw sink stores 31k events/s with
    # batches of 5,000, 41k with 20,000 and 48k with 50,000 (fixed costs per transaction); the
    # 1 s bound keeps the streaming metrics about a second behind when traffic is light.
    "SINK_BATCH_SIZE": "50000",
    "SINK_BATCH_SECONDS": "1.0",
    # A service statement that runs longer than this is stuck, not slow.
    "DB_STATEMENT_TIMEOUT_MS": "60000",
    # How long a consumer retries a transient PostgreSQL failure before it stops with an error
    # (psycopg_pool's reconnect_timeout is also 5 minutes): long enough for a restart or failover.
    "DB_RETRY_TIMEOUT_S": "300",
    # Consumer groups: the raw-events sink and the streaming metrics (the reconciliation and the
    # demo need both names, so they live here rather than in the consumer modules).
    "RAW_EVENTS_GROUP": "raw-events-sink",
    "STREAMING_GROUP": "streaming-metrics",
    "REPORTS_DIR": "reports/output",
    # Report cells describing fewer people than this are suppressed (k-anonymity style).
    "REPORT_MIN_CELL_USERS": "5",
    # Public, so proof hashes made with it could be forged: accepted on the embedded stack only.
    "GDPR_HMAC_KEY": "dev-only-change-me",
    "LOG_LEVEL": "INFO",
    # Lawful basis of analytics. required: an event counts only if its user had analytics
    # consent at the event's time (production). assumed: a user with no consent record counts
    # (the design document's flow, which creates users without consent); recorded withdrawals
    # and erasures still apply.
    "CONSENT_MODE": "assumed",
    # An access export (Art. 15/20) may be downloaded once within this many days; then it is deleted.
    "ACCESS_EXPORT_DAYS": "7",
    # The HTTP collector (python -m collector).
    "COLLECTOR_HOST": "127.0.0.1",
    "COLLECTOR_PORT": "8000",
    # Per request: a browser or app batches a few dozen events; a back-end a few hundred.
    "COLLECTOR_MAX_EVENTS": "1000",
    "COLLECTOR_MAX_BODY_BYTES": "1048576",
    # How long the broker may take to acknowledge a request's events before the collector
    # answers 503: a client that waits longer than this has usually given up already.
    "COLLECTOR_DELIVERY_TIMEOUT_MS": "10000",
    # How often the collector reloads the write keys: a revoked key stops working within this.
    "COLLECTOR_KEY_REFRESH_S": "2",
    # What a 503 tells the client to wait before it sends again.
    "COLLECTOR_RETRY_AFTER_S": "5",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CONSENT_MODES = ("required", "assumed")


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (blank lines and ``#`` comments ignored)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class DatabaseSettings:
    """Where PostgreSQL is and how services talk to it."""

    url: str
    statement_timeout_ms: int
    retry_timeout_s: float = 300.0

    @property
    def display_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class KafkaSettings:
    """Where the broker is and which topic carries the events."""

    bootstrap_servers: str
    topic: str
    partitions: int


@dataclass(frozen=True)
class SinkSettings:
    """How the consumers batch: N records or T seconds, whichever comes first."""

    batch_size: int
    batch_seconds: float


@dataclass(frozen=True)
class CollectorSettings:
    """Where the HTTP collector listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_events: int = 1000
    max_body_bytes: int = 1 << 20
    delivery_timeout_ms: int = 10_000
    key_refresh_s: float = 2.0
    retry_after_s: int = 5


@dataclass(frozen=True)
class ConsumerGroups:
    """The consumer group of each sink; every instance of a group shares its partitions."""

    raw_events: str = "raw-events-sink"
    streaming_metrics: str = "streaming-metrics"


@dataclass(frozen=True)
class Settings:
    """Every setting of the platform, validated once at start-up."""

    database: DatabaseSettings
    kafka: KafkaSettings
    sink: SinkSettings
    reports_dir: Path
    log_level: str
    report_min_cell_users: int = 5
    groups: ConsumerGroups = ConsumerGroups()
    consent_mode: str = "assumed"
    collector: CollectorSettings = CollectorSettings()
    access_export_days: int = 7
    # The GDPR key is checked where it is used (proof hashes), not at every start: consumers,
    # the generator and the reports never need it, so they run against any stack as designed.
    hmac_key_text: str = field(default="", repr=False)
    hmac_key_refusal: str | None = None

    @property
    def gdpr_hmac_key(self) -> bytes:
        """The key of the proof hashes; ConfigError (one line, naming the variable) when it is
        empty, or the public development default anywhere but on the embedded stack."""
        if self.hmac_key_refusal is not None:
            raise ConfigError(self.hmac_key_refusal)
        return self.hmac_key_text.encode("utf-8")

    def describe(self) -> str:
        """One log line with the settings, secrets masked."""
        return (
            f"database={self.database.display_url} kafka={self.kafka.bootstrap_servers} "
            f"topic={self.kafka.topic} batch={self.sink.batch_size}/{self.sink.batch_seconds}s "
            f"reports_dir={self.reports_dir} groups={self.groups.raw_events},{self.groups.streaming_metrics} "
            f"consent_mode={self.consent_mode}"
        )


def _int(values: Mapping[str, str], key: str, minimum: int = 1) -> int:
    raw = values[key]
    try:
        number = int(raw)
    except ValueError as e:
        raise ConfigError(f"{key}={raw!r} is not an integer") from e
    if number < minimum:
        raise ConfigError(f"{key}={number} must be at least {minimum}")
    return number


def _float(values: Mapping[str, str], key: str) -> float:
    raw = values[key]
    try:
        number = float(raw)
    except ValueError as e:
        raise ConfigError(f"{key}={raw!r} is not a number") from e
    if number <= 0:
        raise ConfigError(f"{key}={number} must be positive")
    return number


def _project_path(raw: str) -> Path:
    """A relative path is taken from the project root, not the working directory: a command
    started anywhere writes (and an erasure deletes) the same files, and the paths recorded in
    the database are absolute."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _name(values: Mapping[str, str], key: str) -> str:
    name = values[key].strip()
    if not name:
        raise ConfigError(f"{key} is empty")
    return name


def stack_file(environ: Mapping[str, str] | None = None) -> Path:
    """Where the embedded stack's recorded URLs are read from (``STACK_FILE``)."""
    env = os.environ if environ is None else environ
    return Path(env.get("STACK_FILE", str(DEFAULT_STACK_FILE)))


def merged_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Defaults, then the embedded stack's recorded URLs, then the environment."""
    env = os.environ if environ is None else environ
    values = dict(DEFAULTS)
    values.update(read_env_file(stack_file(env)))
    values.update({k: v for k, v in env.items() if k in DEFAULTS})
    return values


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``overrides``, for a child process that must see other
    settings than its parent (the demo points every command at the stack it started)."""
    return {**os.environ, **overrides}


def default_login() -> tuple[str, str, str]:
    """User, password and database of the default DATABASE_URL: what docker-compose's
    PostgreSQL has and what the embedded stack creates."""
    url = urlsplit(DEFAULTS["DATABASE_URL"])
    if url.username is None or url.password is None:
        raise ConfigError("the default DATABASE_URL names no user and password")
    return url.username, url.password, url.path.lstrip("/")


def log_level(environ: Mapping[str, str] | None = None, default: str = DEFAULTS["LOG_LEVEL"]) -> str:
    """LOG_LEVEL, validated, for entry points that do not load every setting (the embedded
    stack, the demo); ``default`` when it is set nowhere."""
    env = os.environ if environ is None else environ
    return _level(env.get("LOG_LEVEL") or read_env_file(stack_file(env)).get("LOG_LEVEL") or default)


def _level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _database(values: Mapping[str, str], url: str) -> DatabaseSettings:
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"DATABASE_URL must start with postgresql://, got {mask_url(url)!r}")
    return DatabaseSettings(
        url=url,
        statement_timeout_ms=_int(values, "DB_STATEMENT_TIMEOUT_MS"),
        retry_timeout_s=_float(values, "DB_RETRY_TIMEOUT_S"),
    )


def _kafka(values: Mapping[str, str], bootstrap: str) -> KafkaSettings:
    if not bootstrap.strip():
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is empty")
    return KafkaSettings(
        bootstrap_servers=bootstrap, topic=_name(values, "EVENTS_TOPIC"), partitions=_int(values, "EVENTS_TOPIC_PARTITIONS")
    )


def load_database_settings(url: str | None = None, environ: Mapping[str, str] | None = None) -> DatabaseSettings:
    """The database settings alone, for ``url`` (default: DATABASE_URL): the embedded stack
    talks to the PostgreSQL it started before any URL is recorded."""
    values = merged_values(environ)
    return _database(values, values["DATABASE_URL"] if url is None else url)


def load_kafka_settings(bootstrap: str | None = None, environ: Mapping[str, str] | None = None) -> KafkaSettings:
    """The Kafka settings alone, for ``bootstrap`` (default: KAFKA_BOOTSTRAP_SERVERS)."""
    values = merged_values(environ)
    return _kafka(values, values["KAFKA_BOOTSTRAP_SERVERS"] if bootstrap is None else bootstrap)


def on_embedded_stack(environ: Mapping[str, str] | None = None) -> bool:
    """True when the DATABASE_URL in effect is the one the embedded stack recorded in its stack
    file: the developer's own throwaway PostgreSQL, never a shared or production one."""
    recorded = read_env_file(stack_file(environ)).get("DATABASE_URL")
    return recorded is not None and recorded == merged_values(environ)["DATABASE_URL"]


def _hmac_key_refusal(values: Mapping[str, str], environ: Mapping[str, str] | None) -> str | None:
    """Why GDPR_HMAC_KEY must not be used here, or None."""
    key = values["GDPR_HMAC_KEY"]
    if not key.strip():
        return "GDPR_HMAC_KEY is empty; set it to a secret (e.g. `openssl rand -hex 32`)"
    if key == DEFAULTS["GDPR_HMAC_KEY"] and not on_embedded_stack(environ):
        # Anybody can read the default, and with it forge the proof hashes of erased requesters.
        return (
            "GDPR_HMAC_KEY is the public development default; set it to a secret (e.g. `openssl rand -hex 32`)"
            " - the default is only accepted on the embedded stack (`make up`)"
        )
    return None


def _consent_mode(values: Mapping[str, str]) -> str:
    mode = values["CONSENT_MODE"].strip().lower()
    if mode not in CONSENT_MODES:
        raise ConfigError(f"CONSENT_MODE={mode!r} is not one of {', '.join(CONSENT_MODES)}")
    return mode


def _collector(values: Mapping[str, str]) -> CollectorSettings:
    port = _int(values, "COLLECTOR_PORT")
    if port > 65535:
        raise ConfigError(f"COLLECTOR_PORT={port} is not a port number")
    return CollectorSettings(
        host=_name(values, "COLLECTOR_HOST"),
        port=port,
        max_events=_int(values, "COLLECTOR_MAX_EVENTS"),
        max_body_bytes=_int(values, "COLLECTOR_MAX_BODY_BYTES"),
        delivery_timeout_ms=_int(values, "COLLECTOR_DELIVERY_TIMEOUT_MS"),
        key_refresh_s=_float(values, "COLLECTOR_KEY_REFRESH_S"),
        retry_after_s=_int(values, "COLLECTOR_RETRY_AFTER_S"),
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; raise ConfigError with the offending variable."""
    values = merged_values(environ)
    return Settings(
        database=_database(values, values["DATABASE_URL"]),
        kafka=_kafka(values, values["KAFKA_BOOTSTRAP_SERVERS"]),
        sink=SinkSettings(batch_size=_int(values, "SINK_BATCH_SIZE"), batch_seconds=_float(values, "SINK_BATCH_SECONDS")),
        reports_dir=_project_path(values["REPORTS_DIR"]),
        log_level=_level(values["LOG_LEVEL"]),
        report_min_cell_users=_int(values, "REPORT_MIN_CELL_USERS"),
        groups=ConsumerGroups(raw_events=_name(values, "RAW_EVENTS_GROUP"), streaming_metrics=_name(values, "STREAMING_GROUP")),
        hmac_key_text=values["GDPR_HMAC_KEY"],
        hmac_key_refusal=_hmac_key_refusal(values, environ),
        consent_mode=_consent_mode(values),
        collector=_collector(values),
        access_export_days=_int(values, "ACCESS_EXPORT_DAYS"),
    )
