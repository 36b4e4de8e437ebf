"""Settings for every module, declared as pydantic-settings models and read in one place.

Precedence, lowest first: each field's default (the same as docker-compose), the values the
embedded stack recorded in ``.local/stack.env`` (so nothing needs an ``export``), then the
environment. No other module reads ``os.environ``: entry points that cannot load every setting
yet (the embedded stack before it has recorded its URLs, the demo) use the narrower helpers here.
``python -m core.settings_doc`` writes docs/configuration.md from these models.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigError
from core.events import MAX_AMOUNT

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK_FILE = PROJECT_ROOT / ".local" / "stack.env"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
CONSENT_MODES = ("required", "assumed")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# A login may cross the network in clear only to the machine itself.
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
# A Host header or an allowed host: a name or an IPv4 address, or an IPv6 address in brackets;
# then maybe a port.
HOST_PATTERN = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")
# Weekdays as the scheduler's settings name them (SCHEDULER_AUDIT_REPORT_AT=mon 02:00); index 0 is
# Monday, as date.weekday() counts.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A hundred years: beyond it a cutoff date is a typo, not a policy.
MAX_RETENTION_DAYS = 36_525


class Login(NamedTuple):
    """A component's database login: its group role (sql/003, sql/010, ...), the login created for
    it (sql/015, sql/018, sql/022, sql/024) and the variable holding the login's password."""

    role: str
    login: str
    variable: str


# The one table of component logins: core.db connects with it, the settings read the passwords it
# names, the tests and the embedded stack take their lists from it.
COMPONENT_LOGINS: tuple[Login, ...] = (
    Login("event_collector", "login_collector", "DB_PASSWORD_COLLECTOR"),
    Login("ingest_writer", "login_consumers", "DB_PASSWORD_CONSUMERS"),
    Login("gdpr_processor", "login_gdpr", "DB_PASSWORD_GDPR"),
    Login("privacy_api", "login_privacy_api", "DB_PASSWORD_PRIVACY_API"),
    Login("dpo_console", "login_console", "DB_PASSWORD_CONSOLE"),
    Login("analytics_reader", "login_reports", "DB_PASSWORD_REPORTS"),
    Login("privacy_auditor", "login_auditor", "DB_PASSWORD_AUDITOR"),
    Login("batch_writer", "login_batch", "DB_PASSWORD_BATCH"),
    Login("pipeline_monitor", "login_monitor", "DB_PASSWORD_MONITOR"),
    Login("retention_worker", "login_retention", "DB_PASSWORD_RETENTION"),
    Login("scheduler_runner", "login_scheduler", "DB_PASSWORD_SCHEDULER"),
    Login("dashboard_reader", "login_dashboard", "DB_PASSWORD_DASHBOARD"),
    Login("analytics_modeller", "login_analytics", "DB_PASSWORD_ANALYTICS"),
    Login("analysts_api", "login_analysts_api", "DB_PASSWORD_ANALYSTS_API"),
)
LOGIN_PASSWORD_VARIABLES: dict[str, str] = {entry.login: entry.variable for entry in COMPONENT_LOGINS}
_PASSWORD_PREFIX = "DB_PASSWORD_"  # noqa: S105 - a variable name, not a password


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


# -- the value types: each parses the text of one variable ----------------------------------------

# A validator's message names the variable through this mark; _one_line puts the name in its place.
VAR = "{variable}"


def _time_of_day(raw: Any) -> time:
    """HH:MM, a time of day in UTC."""
    if isinstance(raw, time):
        return raw
    text = str(raw).strip()
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{VAR}={text!r} is not a time of day HH:MM (UTC), such as 00:15")
    return time(int(match[1]), int(match[2]))


def _weekday_and_time(raw: Any) -> tuple[int, time]:
    """A weekday and a time of day in UTC, such as ``mon 02:00``."""
    if isinstance(raw, tuple):
        return raw
    text = str(raw).strip()
    day, _, at = text.lower().partition(" ")
    try:
        if day in WEEKDAYS:
            return WEEKDAYS.index(day), _time_of_day(at)
    except ValueError:
        pass
    raise ValueError(f"{VAR}={text!r} is not a weekday and a time (UTC), such as 'mon 02:00'")


def _flag(raw: Any) -> bool:
    """true or false, in any case: pydantic's own bool would also take yes, on and 1."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"{VAR}={text!r} is not true or false")
    return text == "true"


def _hosts(raw: Any) -> tuple[str, ...]:
    """Comma-separated host names or addresses, each with or without a port, an IPv6 address in
    brackets, or * for any; refused for one that is none, or for none at all."""
    if isinstance(raw, tuple):
        return raw
    hosts = []
    for item in str(raw).split(","):
        host = item.strip().lower()
        if host and host != "*" and HOST_PATTERN.fullmatch(host) is None:
            raise ValueError(f"{VAR}: {item.strip()!r} is no host name (e.g. localhost, 127.0.0.1, [::1]:8002)")
        if host:
            hosts.append(host)
    if not hosts:
        raise ValueError(f"{VAR} is empty: name the hosts the service is reached at, e.g. localhost")
    return tuple(hosts)


def _at_most(limit: int, why: str) -> Callable[[int], int]:
    def check(number: int) -> int:
        if number > limit:
            raise ValueError(f"{VAR}={number} {why}")
        return number

    return check


def _one_of(choices: tuple[str, ...], normal: Callable[[str], str]) -> Callable[[Any], str]:
    def check(raw: Any) -> str:
        value = normal(str(raw).strip())
        if value not in choices:
            raise ValueError(f"{VAR}={value!r} is not one of {', '.join(choices)}")
        return value

    return check


_log_level, _log_format = _one_of(LOG_LEVELS, str.upper), _one_of(LOG_FORMATS, str.lower)


def _project_path(raw: Any) -> Path:
    """A relative path is taken from the project root, not the working directory: a command
    started anywhere writes (and an erasure deletes) the same files, and the paths recorded in
    the database are absolute."""
    path = Path(raw).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _strip(raw: Any) -> Any:
    return raw.strip() if isinstance(raw, str) else raw


# What an integer, a count or a duration must be: refusals worded by _one_line.
Count = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]
Name = Annotated[str, BeforeValidator(_strip), Field(min_length=1)]
Port = Annotated[int, Field(ge=1), AfterValidator(_at_most(65535, "is not a port number"))]
Days = Annotated[
    int, Field(ge=1), AfterValidator(_at_most(MAX_RETENTION_DAYS, f"is more than {MAX_RETENTION_DAYS} days (a century)"))
]
Flag = Annotated[bool, BeforeValidator(_flag)]
Hosts = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_hosts)]
TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]
Amount = Annotated[
    Decimal,
    BeforeValidator(_strip),
    Field(gt=0, le=MAX_AMOUNT, decimal_places=2, allow_inf_nan=False),
    AfterValidator(lambda amount: amount.quantize(Decimal("0.01"))),
]


# -- loading: a section reads its variables from one mapping, never from os.environ itself ----------


class _Values(EnvSettingsSource):
    """pydantic-settings' environment source over the merged mapping (stack file, then the
    environment) instead of os.environ, so a caller's ``environ`` is all a load sees."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str]) -> None:
        self._given = values
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Exact names only: a stack file's or environment's "database_url" is not DATABASE_URL.
        return {key.lower(): value for key, value in self._given.items() if key in DEFAULTS}


class Section(BaseSettings):
    """A group of settings read from the environment (through ``load``), frozen once loaded."""

    model_config = SettingsConfigDict(frozen=True, validate_default=True, validate_by_name=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: load() reads the variables, a constructor call in a test
        # gets the defaults, and neither depends on the environment of the process running it.
        return (init_settings,)

    @classmethod
    def load(cls, values: Mapping[str, str], **given: Any) -> Self:
        """This section and those nested in it from ``values`` (variable -> text; defaults for those
        missing), with ``given`` fields as they are; ConfigError naming the variable."""
        nested = {
            name: field.annotation.load(values)  # type: ignore[union-attr]
            for name, field in cls.model_fields.items()
            if _is_section(field) and name not in given
        }
        try:
            return cls(**{**_Values(cls, values)(), **nested, **given})
        except ValidationError as e:
            raise ConfigError(_one_line(cls, e)) from None

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of field ``name``."""
        alias = cls.model_fields[name].validation_alias
        return alias if isinstance(alias, str) else f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def _one_line(cls: type[Section], error: ValidationError) -> str:
    """The first of pydantic's errors as one line naming the variable and its value."""
    first = error.errors(include_url=False)[0]
    names = {**{field.validation_alias: name for name, field in cls.model_fields.items()}}
    location = str(first["loc"][0]) if first["loc"] else ""
    variable = cls.variable(names.get(location, location)) if location else ""
    value, context = first.get("input"), first.get("ctx", {})
    message = {
        "int_parsing": f"{VAR}={value!r} is not an integer",
        "float_parsing": f"{VAR}={value!r} is not a number",
        "greater_than_equal": f"{VAR}={value} must be at least {context.get('ge')}",
        "greater_than": f"{VAR}={value} must be positive",
        "string_too_short": f"{VAR} is empty",
        "too_short": f"{VAR} is empty",
    }.get(first["type"])
    if message is None:
        message = str(first["msg"]).removeprefix("Value error, ")
        if VAR not in message and variable:
            message = f"{VAR}={value!r}: {message}"
    return message.replace(VAR, variable)


def _described(cls: type[Section]) -> Iterator[tuple[str, FieldInfo]]:
    """(variable, field) of each field of ``cls`` that an environment variable sets."""
    for name, field in cls.model_fields.items():
        if not _is_section(field) and not (field.json_schema_extra or {}).get("derived"):  # type: ignore[union-attr]
            yield cls.variable(name), field


def _is_section(field: FieldInfo) -> bool:
    return isinstance(field.annotation, type) and issubclass(field.annotation, Section)


# A field no variable sets (computed at load time): left out of DEFAULTS and the documentation.
DERIVED: dict[str, Any] = {"derived": True}


# -- the sections ------------------------------------------------------------------------------------


class LoginPasswords(Section):
    """The passwords of the components' database logins (sql/015; `python -m core.db` sets them,
    see [Database logins](gdpr.md#database-logins)). The defaults are public, like the owner's
    `de_password`: for compose on a developer's machine. `make up` records random ones in its
    stack file; production sets its own. An empty one is refused where it is used, naming the
    variable."""

    model_config = SettingsConfigDict(env_prefix=_PASSWORD_PREFIX)

    collector: SecretStr = Field(SecretStr("collector-dev-password"), description="the HTTP collector's login")
    consumers: SecretStr = Field(SecretStr("consumers-dev-password"), description="the two consumers' login")
    gdpr: SecretStr = Field(SecretStr("gdpr-dev-password"), description="the GDPR processor's login")
    privacy_api: SecretStr = Field(SecretStr("privacy-api-dev-password"), description="the privacy-request API's login")
    console: SecretStr = Field(SecretStr("console-dev-password"), description="the DPO console's login")
    reports: SecretStr = Field(SecretStr("reports-dev-password"), description="the reports' (and Grafana's) login")
    auditor: SecretStr = Field(SecretStr("auditor-dev-password"), description="the audit trail's verifier's login")
    batch: SecretStr = Field(SecretStr("batch-dev-password"), description="the batch metrics' and the comparison's login")
    monitor: SecretStr = Field(SecretStr("monitor-dev-password"), description="the consumer status' and dead letters' login")
    retention: SecretStr = Field(SecretStr("retention-dev-password"), description="the retention run's login")
    scheduler: SecretStr = Field(SecretStr("scheduler-dev-password"), description="the scheduler's login")
    dashboard: SecretStr = Field(SecretStr("dashboard-dev-password"), description="the live dashboard's login")
    analytics: SecretStr = Field(
        SecretStr("analytics-dev-password"), description="the per-person RFM and lifetime-value scoring's login"
    )
    analysts_api: SecretStr = Field(SecretStr("analysts-api-dev-password"), description="the analysts' API's login")

    def by_login(self) -> dict[str, str]:
        """Login name -> password, leaving out the empty ones."""
        passwords = {
            entry.login: getattr(self, entry.variable.removeprefix(_PASSWORD_PREFIX).lower()).get_secret_value()
            for entry in COMPONENT_LOGINS
        }
        return {login: password for login, password in passwords.items() if password}


class DatabaseSettings(Section):
    """Where PostgreSQL is and how services talk to it."""

    model_config = SettingsConfigDict(env_prefix="DB_")

    # Not a SecretStr: every connection needs the text; display_url masks its password.
    url: str = Field(
        "postgresql://de_user:de_password@localhost:5432/de_db",
        validation_alias="DATABASE_URL",
        repr=False,
        description="PostgreSQL (the owner's login, used by the migrations and operators' tools; shown with its password masked)",
    )
    # A service statement that runs longer than this is stuck, not slow.
    statement_timeout_ms: Count = Field(60000, description="statement timeout of every connection")
    # psycopg_pool's reconnect_timeout is also 5 minutes: long enough for a restart or failover.
    retry_timeout_s: Seconds = Field(
        300, description="how long a consumer retries a transient PostgreSQL failure before it stops (exit 2)"
    )
    passwords: LoginPasswords = Field(default_factory=LoginPasswords, description="the component logins' passwords")

    @model_validator(mode="after")
    def _postgresql(self) -> Self:
        if urlsplit(self.url).scheme not in ("postgresql", "postgres"):
            raise ValueError(f"DATABASE_URL must start with postgresql://, got {mask_url(self.url)!r}")
        return self

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    @property
    def login_passwords(self) -> dict[str, str]:
        """Login name -> password, for core.db.connect(role=...) and the migrator; never shown."""
        return self.passwords.by_login()

    def login_password(self, login: str) -> str:
        """The password of a component's login; ConfigError naming its variable when none is set."""
        password = self.login_passwords.get(login)
        if not password:
            raise ConfigError(f"no password for database login {login!r}: set {LOGIN_PASSWORD_VARIABLES.get(login, 'it')}")
        return password

    def with_passwords(self, passwords: Mapping[str, str]) -> DatabaseSettings:
        """These settings with ``passwords`` (DB_PASSWORD_* variable -> value) over the configured ones."""
        chosen = {variable.removeprefix(_PASSWORD_PREFIX).lower(): SecretStr(value) for variable, value in passwords.items()}
        return self.model_copy(update={"passwords": self.passwords.model_copy(update=chosen)})


class KafkaSettings(Section):
    """Where the broker is and which topic carries the events."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: Name = Field("localhost:9092", description="broker")
    topic: Name = Field("user_events", validation_alias="EVENTS_TOPIC", description="topic of the events")
    partitions: Count = Field(3, validation_alias="EVENTS_TOPIC_PARTITIONS", description="partitions when the topic is created")
    # The events topic is a buffer, not the history (events_raw is): Kafka's copy goes after a week.
    retention_hours: Count = Field(
        168,
        description="`retention.ms` of the events topic when the platform creates it (`make up`, compose's `init`),"
        " and compose's broker default; at most `RETENTION_DAYS` x 24",
    )


class SinkSettings(Section):
    """How the consumers batch: N records or T seconds, whichever comes first."""

    model_config = SettingsConfigDict(env_prefix="SINK_")

    # 50,000 rows or 1 s per transaction: measured here, the raw sink stores 31k events/s with
    # batches of 5,000, 41k with 20,000 and 48k with 50,000 (fixed costs per transaction). A batch
    # closes earlier when the writer is free (core.sink.consumer._poll): light traffic is written
    # within milliseconds, and 1 s bounds how long a batch fills while the writer is busy.
    batch_size: Count = Field(50000, description="a consumer transaction holds at most this many events")
    batch_seconds: Seconds = Field(
        1.0,
        description="a consumer transaction waits at most this many seconds for them; it closes earlier when the writer is free",
    )


class ConsumerGroups(Section):
    """The consumer group of each sink; every instance of a group shares its partitions (the
    reconciliation and the demo need both names, so they live here rather than in the consumers)."""

    raw_events: Name = Field(
        "raw-events-sink",
        validation_alias="RAW_EVENTS_GROUP",
        description="the raw-events sink's group (`--group` overrides one run; the comparison and the demo read it)",
    )
    streaming_metrics: Name = Field(
        "streaming-metrics", validation_alias="STREAMING_GROUP", description="the streaming metrics' group"
    )


class MetadataLimits(Section):
    """What one event's metadata may hold (core.pii.metadata_refusal): keys and values counted
    together at any depth, the longest string, and its size as JSON. The redactor's work grows
    with it, and a real event's is a few keys (the generator's: 4 values, 80 bytes; a checkout
    form's: about 20, 400 bytes); bounds at 10-20x that keep the worst event within 20x of a
    typical one's redaction (bench.redaction). More is a 413 `too_large` at the collector and a
    `too_large` dead letter at the consumers."""

    model_config = SettingsConfigDict(env_prefix="METADATA_")

    max_values: Count = Field(128, description="keys and values of an event's metadata, at any depth")
    max_string_chars: Count = Field(1024, description="characters of one string in it")
    max_bytes: Annotated[int, Field(ge=2)] = Field(4096, description="its size as JSON, in bytes (2 at least: `{}`)")


class CollectorSettings(Section):
    """Where the HTTP collector (`python -m collector`) listens and what it accepts."""

    model_config = SettingsConfigDict(env_prefix="COLLECTOR_")

    host: Name = Field("127.0.0.1", description="where `python -m collector` listens")
    port: Port = Field(8000, description="its port")
    # Per request: a browser or app batches a few dozen events; a back-end a few hundred.
    max_events: Count = Field(1000, description="the most events one request may carry (413 beyond)")
    max_body_bytes: Count = Field(1048576, description="the largest request body (413 beyond)")
    # A client that waits longer than this has usually given up already.
    delivery_timeout_ms: Count = Field(
        10000, description="how long the broker may take to acknowledge a request's events before the answer is 503"
    )
    key_refresh_s: Seconds = Field(
        2, description="how often a collector reloads the write keys (a revoked key stops working within this)"
    )
    retry_after_s: Count = Field(5, description="the `Retry-After` of a 503")
    # A browser sends a batch every few seconds, so 10 is ample for a page, and one script with a
    # public web key takes 10 of a key's 200, not all of them.
    client_rate_per_s: Annotated[int, Field(ge=0)] = Field(
        10,
        description="requests a second one client (IPv4 address, IPv6 /64) may send with one key issued with origins"
        " (a web key), within the key's rate; keys without origins have no share; `0`: no per-client share (behind a"
        " proxy, which is then the only client: the collector reads no forwarded-for header)",
    )
    # The consumers' bounds, checked before the collector redacts: over one, a 413.
    metadata_limits: MetadataLimits = Field(default_factory=MetadataLimits, description="the consumers' metadata bounds")
    # As the consumers hold events to it: above it an event is rejected.
    max_event_amount: Amount = Field(
        Decimal("1000000.00"), validation_alias="MAX_EVENT_AMOUNT", description="see MAX_EVENT_AMOUNT"
    )


class PrivacyApiSettings(Section):
    """Where the privacy-request API (`python -m gdpr.api`) listens, what it accepts, and how a
    mailed code is checked. Each new request mails a code: the rates bound how often one inbox can
    be written to, and how many requests one client may file, so the API cannot be used to flood
    somebody's mailbox."""

    model_config = SettingsConfigDict(env_prefix="PRIVACY_API_")

    host: Name = Field("127.0.0.1", description="where `python -m gdpr.api` listens")
    port: Port = Field(8001, description="its port")
    public_url: Annotated[str, BeforeValidator(lambda url: str(url).strip().rstrip("/"))] = Field(
        "http://localhost:8001",
        description="where people reach the API: the completion notice names the export's address under it",
    )
    # A request is an address, a type and at most three corrected values: 16 KiB is plenty.
    max_body_bytes: Annotated[int, Field(ge=1024)] = Field(16384, description="the largest request body (413 beyond)")
    requests_per_address_per_hour: Count = Field(
        3, description="requests (so mailed codes) per email address an hour, counted in the database (429 beyond)"
    )
    requests_per_client_per_minute: Count = Field(
        10, description="requests one client (IPv4 address, IPv6 /64) may file a minute, per process (429 beyond)"
    )
    retry_after_s: Count = Field(30, description="the `Retry-After` of a 503 (database or mail server down)")
    # 5 tries in 15 minutes: 5 chances in 10^8 for somebody guessing 8 digits. Under a minute
    # nobody can read the mail and type the code.
    code_ttl_s: Annotated[int, Field(ge=60)] = Field(
        900, validation_alias="VERIFICATION_CODE_TTL_S", description="how long a mailed code is valid (60 at least)"
    )
    max_attempts: Count = Field(
        5, validation_alias="VERIFICATION_MAX_ATTEMPTS", description="how many tries a mailed code allows"
    )

    @model_validator(mode="after")
    def _http_url(self) -> Self:
        url = self.public_url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"PRIVACY_API_PUBLIC_URL={url!r} is not an http(s) URL such as https://privacy.example.com")
        return self


class MailSettings(Section):
    """Outgoing mail (verification codes, completion notices). The embedded stack records its own
    local server (`make up`); production names its relay, with a login only over STARTTLS."""

    model_config = SettingsConfigDict(env_prefix="SMTP_")

    host: Name = Field("localhost", description="where mail goes (`make up` records its own server)")
    port: Port = Field(1025, description="the SMTP server's port")
    sender: Annotated[str, BeforeValidator(_strip)] = Field(
        "privacy@localhost", validation_alias="SMTP_FROM", description="the sender of the platform's mail"
    )
    user: Annotated[str, BeforeValidator(_strip)] = Field(
        "", description="a login to the SMTP server, with SMTP_PASSWORD or not at all"
    )
    password: SecretStr = Field(
        SecretStr(""),
        description="the login's password, never shown; refused without `SMTP_STARTTLS=true` unless the server is"
        " the machine itself",
    )
    starttls: Flag = Field(False, description="STARTTLS (certificate checked) before the login")
    timeout_s: Seconds = Field(10, description="the timeout of each step of a conversation with the server")

    @model_validator(mode="after")
    def _safe_login(self) -> Self:
        sender = self.sender
        if sender.count("@") != 1 or not sender.isprintable() or any(c.isspace() or c in "<>,;" for c in sender):
            raise ValueError(f"SMTP_FROM={sender!r} is not a plain address such as privacy@example.com")
        password = self.password.get_secret_value()
        if bool(self.user) != bool(password):
            raise ValueError("set both SMTP_USER and SMTP_PASSWORD for a login to the SMTP server, or neither")
        if password and not self.starttls and self.host.lower() not in _LOOPBACK:
            raise ValueError(
                f"SMTP_PASSWORD is set but SMTP_STARTTLS is off: the password would cross the network to {self.host}"
                " in clear; set SMTP_STARTTLS=true"
            )
        return self

    @property
    def display(self) -> str:
        """``smtp://host:port`` with the login's user and STARTTLS, never the password."""
        login = f"{self.user}@" if self.user else ""
        return f"smtp://{login}{self.host}:{self.port}" + (" (STARTTLS)" if self.starttls else "")


class ConsoleSettings(Section):
    """Where the DPO console (`python -m console`) listens, the hosts it answers, and how long its
    sessions last. It is internal, so it listens on the loopback by default."""

    model_config = SettingsConfigDict(env_prefix="CONSOLE_")

    host: Name = Field("127.0.0.1", description="where `python -m console` listens")
    port: Port = Field(8002, description="its port")
    # A working day, so a forgotten tab expires overnight.
    session_hours: Annotated[int, Field(ge=1), AfterValidator(_at_most(24 * 7, "hours: a session may last a week at most"))] = (
        Field(8, description="how long a DPO stays signed in (a week at most)")
    )
    secure_cookies: Flag = Field(False, description="`true` behind TLS: the session cookie is then sent over HTTPS only")
    # A page of any site whose name an attacker points at 127.0.0.1 (DNS rebinding) sends its own
    # name, so only the loopback's names by default.
    allowed_hosts: Hosts = Field(
        LOOPBACK_HOSTS,
        description="the Host headers the console answers (400 to others, against DNS rebinding): names or addresses,"
        " an IPv6 one in brackets, each with any port unless `:port` is given; `*` for any",
    )


class DashboardSettings(Section):
    """Where the live dashboard (`python -m dashboard`) listens and the hosts it answers; internal,
    so on the loopback by default."""

    model_config = SettingsConfigDict(env_prefix="DASHBOARD_")

    host: Name = Field("127.0.0.1", description="where `python -m dashboard` listens")
    port: Port = Field(8003, description="its port")
    allowed_hosts: Hosts = Field(LOOPBACK_HOSTS, description="the Host headers the dashboard answers, as `CONSOLE_ALLOWED_HOSTS`")


class AnalystsApiSettings(Section):
    """Where the analysts' API (`python -m analytics.api`) listens and what it accepts: the
    noise-protected releases for analysts and the budgets and ledger for the DPO (see
    [The analysts' API](analysts_api.md))."""

    model_config = SettingsConfigDict(env_prefix="ANALYSTS_API_")

    host: Name = Field("127.0.0.1", description="where `python -m analytics.api` listens")
    port: Port = Field(8004, description="its port")
    # A dashboard of an analyst asks a handful of figures at once; a token guesser gets 2 a second.
    requests_per_client_per_minute: Count = Field(
        120, description="requests one client (IPv4 address, IPv6 /64) may send a minute, per process (429 beyond)"
    )
    # The utility table goes up to 4: above it the noise protects little.
    max_epsilon: Annotated[float, Field(gt=0, le=100)] = Field(
        4.0, description="the largest privacy loss (epsilon) one release may spend (400 beyond)"
    )
    # A year of days by country is 365 x 27 cells; longer ranges are a typo or a scraper.
    # analytics.dp releases at most 366 days (MAX_RANGE_DAYS): a longer setting would let a request
    # through the parameters that the release then refuses.
    max_days: Annotated[int, Field(ge=1, le=366)] = Field(366, description="the longest date range one release may cover")
    retry_after_s: Count = Field(30, description="the `Retry-After` of a 503 (the database does not answer)")


class HttpSettings(Section):
    """The deadlines of every HTTP service (collector, privacy API, console, dashboard) for a
    request's headers and its body: a client dripping bytes to hold connections open gets a 408
    and its connection closed."""

    model_config = SettingsConfigDict(env_prefix="HTTP_")

    # A browser sends the headers in one packet; 10 s leaves a slow mobile link room.
    header_timeout_s: Seconds = Field(
        10,
        description="a request's headers must arrive within this many seconds of its first byte or of the connection's opening",
    )
    # The collector's 1 MiB at 300 kbit/s takes 28 s.
    body_timeout_s: Seconds = Field(30, description="its body within this many seconds of its headers")


def _countries(raw: Any) -> tuple[str, ...]:
    """Comma-separated ISO 3166-1 alpha-2 codes, upper case; refused for one that is none, or none at all."""
    if isinstance(raw, tuple):
        return raw
    codes = [item.strip().upper() for item in str(raw).split(",") if item.strip()]
    wrong = [code for code in codes if re.fullmatch(r"[A-Z]{2}", code) is None]
    if wrong or not codes:
        raise ValueError(f"{VAR} must be comma-separated two-letter country codes (e.g. DE,FR), not {raw!r}")
    return tuple(dict.fromkeys(codes))


Countries = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_countries)]
# The EU's 27 member states: a public list, never "the countries present in the data" (which would
# tell who is there). The shop sells to 14 of them; the others are released as (noisy) zeros.
EU_COUNTRIES = (
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
)  # fmt: skip


class ReleaseSettings(Section):
    """How a differentially private release (analytics.dp, see [Privacy releases](privacy_releases.md))
    bounds each person's contribution, and its public key set. A person contributes at most
    `max_days` day summaries to one release, each with at most `max_events_per_day` events,
    `max_purchases_per_day` purchases and `max_spend_per_day` euros; more is clamped (the bound, not
    the data, sets the noise)."""

    model_config = SettingsConfigDict(env_prefix="RELEASE_")

    countries: Countries = Field(
        EU_COUNTRIES, description="the public list of countries a by-country release reports (comma-separated)"
    )
    # The shoppers model buys at 0.0625 a day while active, most people far less: a person is seen on a
    # few days of a month; 7 keeps nearly all and sets a count's noise to 7 times a single day's.
    max_days: Annotated[int, Field(ge=1, le=366)] = Field(
        7, description="the most day summaries of one person a release counts (the earliest in its range)"
    )
    # `python -m bench.utility` on the demo's data: the 99th percentile of person-days is 23 events
    # (rounded up: 25, keeps 99.4 % of days whole), 1-2 purchases and 263 EUR on the days with a purchase.
    max_events_per_day: Annotated[int, Field(ge=1, le=100_000)] = Field(
        25, description="a person-day's events are clamped to this many"
    )
    max_purchases_per_day: Annotated[int, Field(ge=1, le=100_000)] = Field(
        2, description="a person-day's purchases are clamped to this many"
    )
    # The 99th percentile of the demo's days with a purchase is 263 EUR (rounded up: 500, 99.99 % whole).
    max_spend_per_day: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        500, description="a person-day's revenue is clamped to [0, this many euros]"
    )
    # Retention follows a cohort for a quarter, as the retention command's default (12 weeks) does;
    # a person counts in their cohort's size and in up to this many weeks after signing up.
    retention_weeks: Annotated[int, Field(ge=1, le=104)] = Field(
        12, description="the weeks after a cohort's own that a retention release counts (a person's contribution)"
    )
    # RFM's monetary value is a year's purchases: ten average orders (60 EUR) keep most people whole.
    max_monetary: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        600, description="a person's RFM monetary value is clamped to [0, this many euros] in a release"
    )
    # The fitted lifetime values (BG/NBD x Gamma-Gamma) of the demo's shoppers lie mostly under 500 EUR.
    max_clv: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        500, description="a person's lifetime value is clamped to [0, this many euros] in a release"
    )


class MetricsSettings(Section):
    """Where the services' Prometheus exporters listen (core.metrics; see [Metrics and
    alerts](running.md#metrics-and-alerts)); each one's port is its `--metrics-port`, by default
    its own (``enabled``) or none; a default port that is taken moves up by 100 at most
    ``port_retries`` times."""

    model_config = SettingsConfigDict(env_prefix="METRICS_")

    # The metrics are for the operators' Prometheus; compose sets 0.0.0.0 inside each container.
    host: Name = Field("127.0.0.1", description="where every service's Prometheus exporter listens (`--metrics-port`)")
    # false: the test suite and the benchmarks, which run many instances side by side.
    enabled: Flag = Field(
        True,
        description="`false`: a service started without `--metrics-port` serves no metrics instead of taking its default port",
    )
    # Spark's UI tries 16 ports too. Steps of 100 keep clear of the other services' defaults
    # (9101-9107), so each stays where Prometheus looks.
    port_retries: Annotated[int, Field(ge=0)] = Field(
        16, description="a taken default metrics port moves up by 100 at most this often (another instance on the host)"
    )


class RetentionSettings(Section):
    """How many days each kind of data is kept (storage limitation, GDPR Art. 5(1)(e)):
    `python -m gdpr.retention` removes what is older, per kind of data (see
    [Retention](gdpr.md#retention-storage-limitation-art-51e)); access exports follow
    ACCESS_EXPORT_DAYS. Each is 1 day at least and a century at most."""

    raw_event_days: Days = Field(
        395,
        validation_alias="RETENTION_DAYS",
        description="raw events of days before this many days ago are removed (13 months: a year to compare with the"
        " year before, and a month to notice a gap); the daily metrics stay",
    )
    # Dead letters diagnose a bad producer: a month is time enough to find and fix it.
    dead_letter_days: Days = Field(
        30,
        validation_alias="DEAD_LETTER_RETENTION_DAYS",
        description="dead letters received before this many days ago are removed",
    )
    # Three years, a leap day included: the regular limitation period of a claim about how a
    # request was handled (BGB section 195, for example).
    privacy_request_days: Days = Field(
        1096,
        validation_alias="PRIVACY_REQUEST_RETENTION_DAYS",
        description="a processed request's residue (outcome, export and secret columns, corrections) goes this long"
        " after processing: three years; its type, status, dates and HMAC proof stay",
    )
    # A year to compare with, and a month's grace.
    report_days: Days = Field(
        400,
        validation_alias="REPORT_RETENTION_DAYS",
        description="report files whose day (in their name) is before this many days ago are removed",
    )


class SchedulerSettings(Section):
    """When `python -m scheduler` runs each periodic job (every time in UTC) and how (see
    [Scheduler](running.md#scheduler)). The nightly batch waits a quarter of an hour past midnight
    so the consumers have stored the day's last events; the reports follow it, retention runs
    after them, and the GDPR audit report is weekly."""

    model_config = SettingsConfigDict(env_prefix="SCHEDULER_")

    batch_at: TimeOfDay = Field(time(0, 15), description="when the nightly batch and comparison run, `HH:MM` UTC")
    # Off by default, as a repair rewrites streaming figures.
    repair: Flag = Field(
        False,
        description="`true`: the nightly comparison runs with `--repair`; otherwise a drift fails the run for a person"
        " to look at",
    )
    analytics_at: TimeOfDay = Field(
        time(0, 45),
        description="when the RFM scores and the lifetime-value fit are recomputed, best after the nightly batch"
        " (which summarises the closed day), `HH:MM` UTC",
    )
    daily_report_at: TimeOfDay = Field(
        time(1, 0), description="when the daily business report of the closed day is made, `HH:MM` UTC"
    )
    audit_report: Annotated[tuple[int, time], NoDecode, BeforeValidator(_weekday_and_time)] = Field(
        (0, time(2, 0)),
        validation_alias="SCHEDULER_AUDIT_REPORT_AT",
        description="when the weekly GDPR audit report is made: a weekday (`mon` ... `sun`) and `HH:MM` UTC",
    )
    retention_at: TimeOfDay = Field(time(3, 0), description="when retention runs, `HH:MM` UTC")
    erasure_upkeep_at: TimeOfDay = Field(
        time(3, 30),
        description="when the erasure upkeep runs, best after retention (each person's event days: dropped days out,"
        " closed days in; then the deferred index cleanup), `HH:MM` UTC",
    )
    deadline_check_minute: Annotated[int, Field(ge=0), AfterValidator(_at_most(59, "is not a minute of the hour (0-59)"))] = (
        Field(5, description="the hourly check of privacy requests' deadlines runs at this minute")
    )
    deadline_warn_days: Count = Field(7, description="it warns of open requests overdue or due within this many days")
    catch_up: Flag = Field(
        True, description="on start, the scheduler runs once each job whose latest due time has no successful run"
    )
    # A job still running after this long is stuck, not slow.
    job_timeout_s: Seconds = Field(
        3600, description="a job's command still running after this long is stopped and its run recorded failed"
    )

    @property
    def audit_report_weekday(self) -> int:
        return self.audit_report[0]

    @property
    def audit_report_at(self) -> time:
        return self.audit_report[1]

    def describe(self) -> str:
        """One log line with the scheduler's settings (it has no secret)."""
        return (
            f"batch={self.batch_at:%H:%M} repair={self.repair} analytics={self.analytics_at:%H:%M} "
            f"daily_report={self.daily_report_at:%H:%M} "
            f"audit_report={WEEKDAYS[self.audit_report_weekday]} {self.audit_report_at:%H:%M} "
            f"retention={self.retention_at:%H:%M} erasure_upkeep={self.erasure_upkeep_at:%H:%M} "
            f"deadline_check=:{self.deadline_check_minute:02d} "
            f"warn_days={self.deadline_warn_days} catch_up={self.catch_up} job_timeout={self.job_timeout_s:g}s (UTC)"
        )


def _kafka_within_retention(kafka: KafkaSettings, retention: RetentionSettings) -> None:
    """Kafka's copy of the events must not outlive events_raw's (ValueError otherwise)."""
    hours, days = kafka.retention_hours, retention.raw_event_days
    if hours > days * 24:
        raise ValueError(
            f"KAFKA_RETENTION_HOURS={hours} would keep the events in Kafka longer than RETENTION_DAYS={days} keeps them"
            " in events_raw: lower it"
        )


class Settings(Section):
    """Every setting of the platform, validated once at start-up. These variables belong to no
    one component; each section after them is one component's or one concern's."""

    reports_dir: Annotated[Path, BeforeValidator(_project_path)] = Field(
        Path("reports/output"),
        description="where report files and access exports go; a relative path is taken from the project root,"
        " whatever the working directory",
    )
    log_level: Annotated[str, BeforeValidator(_log_level)] = Field("INFO", description="`DEBUG`, `INFO`, `WARNING`, `ERROR`")
    log_format: Annotated[str, BeforeValidator(_log_format)] = Field(
        "text",
        description="`json`: one JSON object per line (`time` in UTC, `level`, `logger`, `message`, `process`, `exception`)"
        " for log shippers; the same records as in text, never personal data or payloads",
    )
    # k-anonymity style.
    report_min_cell_users: Count = Field(5, description="report breakdown cells describing fewer users are suppressed")
    # dp: the default for breakdowns (issue 29); k only where the DPO allowed the k-rule for the figure.
    report_release_mode: Annotated[str, BeforeValidator(_one_of(("dp", "k"), str.lower))] = Field(
        "dp",
        description="how the daily report releases its breakdown by country. `dp`: through differential privacy"
        " (OpenDP) from the budget `report:daily`, each figure with its 95 % interval (see [Privacy releases]"
        "(privacy_releases.md)); `k`: the k-rule (REPORT_MIN_CELL_USERS), only where the DPO allowed it",
    )
    # One day's four KPIs at 1: a count within about +-12 (95 %); a year of daily reports spends 365.
    report_epsilon: Annotated[float, Field(gt=0, le=100)] = Field(
        1.0,
        description="the epsilon one daily report's by-country release spends from the budget `report:daily`"
        " (a report rerun for the same day spends it again)",
    )
    # An hour, as PostHog's and Mixpanel's funnels default to; at most a day, as a sequence must lie
    # within its page view's UTC day (docs/analytics.md).
    analytics_funnel_window_s: Annotated[int, Field(ge=1, le=86400)] = Field(
        3600,
        description="the ordered funnel's conversion window in seconds (1 to 86400): page_view, add_to_cart and"
        " purchase count as one sequence when all three happen in that order within it, on the page view's UTC day."
        " The per-person-day summaries are built with it (`python -m batch.batch_metrics`); after a change, rebuild"
        " the days to analyse with `--from`/`--to`: `python -m analytics.funnel` refuses days built with another window",
    )
    # required: production. assumed: the design document's flow, which creates users without consent.
    consent_mode: Annotated[str, BeforeValidator(_one_of(CONSENT_MODES, str.lower))] = Field(
        "assumed",
        description="lawful basis of analytics. `required`: only events of users with a recorded analytics grant at the"
        " event's time count (production, `make demo`); `assumed`: users without a record count too, as in the design"
        " document (see [Consent](gdpr.md#consent-lawful-basis-of-analytics)); recorded withdrawals and erasures still apply",
    )
    access_export_days: Days = Field(
        7,
        description="how long an access export (Art. 15/20) may be downloaded (then it is deleted); retention also"
        " deletes files in `REPORTS_DIR/access/` that no request points to, once older than this",
    )
    # Public, so proof hashes made with it could be forged: accepted on the embedded stack only.
    # Checked where it is used (proof hashes), not at every start: consumers, the generator and the
    # reports never need it, so they run against any stack as designed.
    hmac_key_text: SecretStr = Field(
        SecretStr("dev-only-change-me"),
        validation_alias="GDPR_HMAC_KEY",
        description="key of the email HMAC kept as proof of erasure. The public default is accepted only on the"
        " embedded stack (the `DATABASE_URL` in effect is the one `make up` recorded); anywhere else the GDPR processor"
        " refuses it, and an empty key, with one line naming the variable: set a secret, e.g. `openssl rand -hex 32`"
        " (for compose: in the environment or `.env`)",
    )
    hmac_key_refusal: str | None = Field(None, description="why GDPR_HMAC_KEY must not be used here", json_schema_extra=DERIVED)
    # Held by the verifier, never by the database, so whoever rewrites the trail there cannot make
    # new seals.
    audit_seal_key_text: SecretStr = Field(
        SecretStr("dev-only-audit-seal-key"),
        validation_alias="AUDIT_SEAL_KEY",
        description="key of the HMAC seals `python -m gdpr.verify_audit` puts on the audit trail's head (see"
        " [Audit trail](gdpr.md#audit-trail)); the database never holds it, so whoever rewrites the table cannot forge"
        " a seal. The public default is accepted only on the embedded stack, as for `GDPR_HMAC_KEY`",
    )
    audit_seal_key_refusal: str | None = Field(
        None, description="why AUDIT_SEAL_KEY must not be used here", json_schema_extra=DERIVED
    )
    # No real purchase comes near it, and at this maximum the day's totals (NUMERIC(38, 2), sql/028)
    # cannot overflow whatever the rate.
    max_event_amount: Amount = Field(
        Decimal("1000000.00"),
        description="the most one event may carry, in euros (at most 9999999999.99, what `events_raw.amount` holds);"
        " above it an event is rejected: `amount_out_of_range`",
    )
    # Each one takes locks and moves rows, and a 50 KB request once spread over 380 days created
    # 380 of them.
    partitions_per_batch: Annotated[int, Field(ge=0)] = Field(
        8,
        description="how many past days' partitions of `events_raw` one raw-events batch may create (today and the"
        " week ahead are always kept); the rest wait in the default partition for the nightly retention run",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings, description="PostgreSQL")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka")
    sink: SinkSettings = Field(default_factory=SinkSettings, description="the consumers' batches")
    groups: ConsumerGroups = Field(default_factory=ConsumerGroups, description="the consumer groups")
    metadata_limits: MetadataLimits = Field(default_factory=MetadataLimits, description="an event's metadata")
    retention: RetentionSettings = Field(default_factory=RetentionSettings, description="retention")
    collector: CollectorSettings = Field(default_factory=CollectorSettings, description="the HTTP collector")
    privacy_api: PrivacyApiSettings = Field(default_factory=PrivacyApiSettings, description="the privacy-request API")
    mail: MailSettings = Field(default_factory=MailSettings, description="outgoing mail")
    console: ConsoleSettings = Field(default_factory=ConsoleSettings, description="the DPO console")
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings, description="the live dashboard")
    analysts_api: AnalystsApiSettings = Field(default_factory=AnalystsApiSettings, description="the analysts' API")
    http: HttpSettings = Field(default_factory=HttpSettings, description="every HTTP service")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings, description="the Prometheus exporters")
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings, description="the scheduler")
    release: ReleaseSettings = Field(default_factory=ReleaseSettings, description="differentially private releases")

    @model_validator(mode="after")
    def _kafka_keeps_no_more_than_events_raw(self) -> Self:
        _kafka_within_retention(self.kafka, self.retention)
        return self

    @property
    def gdpr_hmac_key(self) -> bytes:
        """The key of the proof hashes; ConfigError (one line, naming the variable) when it is
        empty, or the public development default anywhere but on the embedded stack."""
        if self.hmac_key_refusal is not None:
            raise ConfigError(self.hmac_key_refusal)
        return self.hmac_key_text.get_secret_value().encode("utf-8")

    @property
    def audit_seal_key(self) -> bytes:
        """The key of the audit trail's seals; ConfigError (one line) when it is empty, or the
        public development default anywhere but on the embedded stack."""
        if self.audit_seal_key_refusal is not None:
            raise ConfigError(self.audit_seal_key_refusal)
        return self.audit_seal_key_text.get_secret_value().encode("utf-8")

    def describe(self) -> str:
        """One log line with the settings, secrets masked."""
        return (
            f"database={self.database.display_url} kafka={self.kafka.bootstrap_servers} "
            f"topic={self.kafka.topic} batch={self.sink.batch_size}/{self.sink.batch_seconds}s "
            f"reports_dir={self.reports_dir} groups={self.groups.raw_events},{self.groups.streaming_metrics} "
            f"consent_mode={self.consent_mode}"
        )


def sections(cls: type[Section] = Settings) -> Iterator[type[Section]]:
    """``cls`` and every section nested in it, each once, in the order they are declared."""
    seen: set[type[Section]] = set()

    def walk(section: type[Section]) -> Iterator[type[Section]]:
        if section in seen:
            return
        seen.add(section)
        yield section
        for field in section.model_fields.values():
            if _is_section(field):
                yield from walk(field.annotation)  # type: ignore[arg-type]

    return walk(cls)


def _as_text(value: Any) -> str:
    """A default as the environment spells it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, tuple) and value and isinstance(value[-1], time):
        return f"{WEEKDAYS[value[0]]} {value[1]:%H:%M}"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def variables() -> Iterator[tuple[type[Section], str, FieldInfo]]:
    """(section, variable, field) of every variable the settings read."""
    for section in sections():
        for variable, field in _described(section):
            yield section, variable, field


# Every variable the settings read and its default, as the environment would spell it (the same as
# docker-compose's).
DEFAULTS: dict[str, str] = {variable: _as_text(field.default) for _, variable, field in variables()}


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


def _logging_value(environ: Mapping[str, str] | None, variable: str, default: str, check: Callable[[Any], str]) -> str:
    env = os.environ if environ is None else environ
    raw = env.get(variable) or read_env_file(stack_file(env)).get(variable) or default
    try:
        return check(raw)
    except ValueError as e:
        raise ConfigError(str(e).replace(VAR, variable)) from None


def log_level(environ: Mapping[str, str] | None = None, default: str = DEFAULTS["LOG_LEVEL"]) -> str:
    """LOG_LEVEL, validated, for entry points that do not load every setting (the embedded
    stack, the demo); ``default`` when it is set nowhere."""
    return _logging_value(environ, "LOG_LEVEL", default, _log_level)


def log_format(environ: Mapping[str, str] | None = None) -> str:
    """LOG_FORMAT (text or json), validated, read as log_level() is: every entry point's logging
    set-up (core.cli.setup_logging) takes it from here."""
    return _logging_value(environ, "LOG_FORMAT", DEFAULTS["LOG_FORMAT"], _log_format)


def load_database_settings(
    url: str | None = None, environ: Mapping[str, str] | None = None, passwords: Mapping[str, str] | None = None
) -> DatabaseSettings:
    """The database settings alone, for ``url`` (default: DATABASE_URL) and with ``passwords``
    (DB_PASSWORD_* variable -> value) over the configured ones: the embedded stack talks to the
    PostgreSQL it started, with the logins' passwords it chose, before it has recorded either."""
    values = {**merged_values(environ), **(passwords or {})}
    if url is not None:
        values["DATABASE_URL"] = url
    return DatabaseSettings.load(values)


def set_in_environment(keys: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Those of ``keys`` the environment itself sets (not the defaults, not a stack file): the
    embedded stack lets them win over the passwords it chose."""
    env = os.environ if environ is None else environ
    return {key: env[key] for key in keys if env.get(key)}


def load_kafka_settings(bootstrap: str | None = None, environ: Mapping[str, str] | None = None) -> KafkaSettings:
    """The Kafka settings alone, for ``bootstrap`` (default: KAFKA_BOOTSTRAP_SERVERS)."""
    values = merged_values(environ)
    if bootstrap is not None:
        values["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    kafka = KafkaSettings.load(values)
    try:
        _kafka_within_retention(kafka, RetentionSettings.load(values))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return kafka


def on_embedded_stack(environ: Mapping[str, str] | None = None) -> bool:
    """True when the DATABASE_URL in effect is the one the embedded stack recorded in its stack
    file: the developer's own throwaway PostgreSQL, never a shared or production one."""
    recorded = read_env_file(stack_file(environ)).get("DATABASE_URL")
    return recorded is not None and recorded == merged_values(environ)["DATABASE_URL"]


def _hmac_key_refusal(values: Mapping[str, str], environ: Mapping[str, str] | None, variable: str) -> str | None:
    """Why the key in ``variable`` (GDPR_HMAC_KEY, AUDIT_SEAL_KEY) must not be used here, or None."""
    key = values[variable]
    if not key.strip():
        return f"{variable} is empty; set it to a secret (e.g. `openssl rand -hex 32`)"
    if key == DEFAULTS[variable] and not on_embedded_stack(environ):
        # Anybody can read the default, and with it forge the proof hashes of erased requesters
        # (or the audit trail's seals).
        return (
            f"{variable} is the public development default; set it to a secret (e.g. `openssl rand -hex 32`)"
            " - the default is only accepted on the embedded stack (`make up`)"
        )
    return None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; raise ConfigError with the offending variable."""
    values = merged_values(environ)
    return Settings.load(
        values,
        hmac_key_refusal=_hmac_key_refusal(values, environ, "GDPR_HMAC_KEY"),
        audit_seal_key_refusal=_hmac_key_refusal(values, environ, "AUDIT_SEAL_KEY"),
    )
