"""Settings for every module, read from the environment in one place.

Precedence, lowest first: built-in defaults (the same as docker-compose), the URLs the embedded
stack recorded in ``.local/stack.env`` (so nothing needs an ``export``), then the environment.
No other module reads ``os.environ``: entry points that cannot load every setting yet (the
embedded stack before it has recorded its URLs, the demo) use the narrower helpers here.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.errors import ConfigError
from core.events import MAX_AMOUNT

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK_FILE = PROJECT_ROOT / ".local" / "stack.env"

DEFAULTS: dict[str, str] = {
    "DATABASE_URL": "postgresql://de_user:de_password@localhost:5432/de_db",
    "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
    "EVENTS_TOPIC": "user_events",
    "EVENTS_TOPIC_PARTITIONS": "3",
    # 50,000 rows or 1 s per transaction: measured here, the raw sink stores 31k events/s with
    # batches of 5,000, 41k with 20,000 and 48k with 50,000 (fixed costs per transaction). A batch
    # closes earlier when the writer is free (core.sink.consumer._poll): light traffic is written
    # within milliseconds, and 1 s bounds how long a batch fills while the writer is busy.
    "SINK_BATCH_SIZE": "50000",
    "SINK_BATCH_SECONDS": "1.0",
    # A service statement that runs longer than this is stuck, not slow.
    "DB_STATEMENT_TIMEOUT_MS": "60000",
    # How long a consumer retries a transient PostgreSQL failure before it stops with an error
    # (psycopg_pool's reconnect_timeout is also 5 minutes): long enough for a restart or failover.
    "DB_RETRY_TIMEOUT_S": "300",
    # The passwords of the components' logins (sql/015; core.db.migrate sets them). Public, like
    # the owner's de_password: for compose on a developer's machine. `make up` records random ones
    # in its stack file; production sets its own.
    "DB_PASSWORD_COLLECTOR": "collector-dev-password",
    "DB_PASSWORD_CONSUMERS": "consumers-dev-password",
    "DB_PASSWORD_GDPR": "gdpr-dev-password",
    "DB_PASSWORD_PRIVACY_API": "privacy-api-dev-password",
    "DB_PASSWORD_CONSOLE": "console-dev-password",
    "DB_PASSWORD_REPORTS": "reports-dev-password",
    "DB_PASSWORD_AUDITOR": "auditor-dev-password",
    "DB_PASSWORD_BATCH": "batch-dev-password",
    "DB_PASSWORD_MONITOR": "monitor-dev-password",
    "DB_PASSWORD_RETENTION": "retention-dev-password",
    "DB_PASSWORD_SCHEDULER": "scheduler-dev-password",
    "DB_PASSWORD_DASHBOARD": "dashboard-dev-password",
    # Consumer groups: the raw-events sink and the streaming metrics (the reconciliation and the
    # demo need both names, so they live here rather than in the consumer modules).
    "RAW_EVENTS_GROUP": "raw-events-sink",
    "STREAMING_GROUP": "streaming-metrics",
    "REPORTS_DIR": "reports/output",
    # Report cells describing fewer people than this are suppressed (k-anonymity style).
    "REPORT_MIN_CELL_USERS": "5",
    # Public, so proof hashes made with it could be forged: accepted on the embedded stack only.
    "GDPR_HMAC_KEY": "dev-only-change-me",
    # The key of the audit trail's seals (gdpr.verify_audit): held by the verifier, never by the
    # database, so whoever rewrites the trail there cannot make new seals. Public like the one
    # above: accepted on the embedded stack only.
    "AUDIT_SEAL_KEY": "dev-only-audit-seal-key",
    "LOG_LEVEL": "INFO",
    # text: one line per record for people; json: one JSON object per line for log shippers.
    "LOG_FORMAT": "text",
    # Lawful basis of analytics. required: an event counts only if its user had analytics
    # consent at the event's time (production). assumed: a user with no consent record counts
    # (the design document's flow, which creates users without consent); recorded withdrawals
    # and erasures still apply.
    "CONSENT_MODE": "assumed",
    # An access export (Art. 15/20) may be downloaded once within this many days; then it is deleted.
    "ACCESS_EXPORT_DAYS": "7",
    # Storage limitation (GDPR Art. 5(1)(e)): python -m gdpr.retention removes what is older than
    # this many days, per kind of data (docs/gdpr.md, Retention). Raw events: 13 months, a year to
    # compare with the year before plus a month to notice a gap; the daily metrics stay.
    "RETENTION_DAYS": "395",
    # Dead letters diagnose a bad producer: a month is time enough to find and fix it.
    "DEAD_LETTER_RETENTION_DAYS": "30",
    # A processed request's residue (outcome, export and secret columns); its proof stays. Three
    # years, a leap day included: the regular limitation period of a claim about how it was handled
    # (BGB section 195, for example).
    "PRIVACY_REQUEST_RETENTION_DAYS": "1096",
    # Report files by the day in their name: a year to compare with, and a month's grace.
    "REPORT_RETENTION_DAYS": "400",
    # The events topic is a buffer, not the history (events_raw is): Kafka's copy goes after a week.
    "KAFKA_RETENTION_HOURS": "168",
    # What one event's metadata may hold: the redactor's work grows with it, and a real event's is
    # a few keys (the generator's: 4 values, 80 bytes; a checkout form's: about 20, 400 bytes).
    # Bounds at 10-20x that keep the worst event within 20x of a typical one's redaction
    # (bench.redaction); over a bound the collector answers 413 and the consumers dead-letter it.
    "METADATA_MAX_VALUES": "128",
    "METADATA_MAX_STRING_CHARS": "1024",
    "METADATA_MAX_BYTES": "4096",
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
    # Requests a second one client (IPv4 address or IPv6 /64) may send with one key, within the
    # key's own rate: a browser sends a batch every few seconds, so 10 is ample for a page, and
    # one script with a public web key takes 10 of a key's 200, not all of them. 0: no per-client
    # share (behind a proxy every request comes from the proxy's address).
    "COLLECTOR_CLIENT_RATE_PER_S": "10",
    # The privacy-request API (python -m gdpr.api): people file requests, verified by a mailed code.
    "PRIVACY_API_HOST": "127.0.0.1",
    "PRIVACY_API_PORT": "8001",
    # Where people reach the API: the completion notice names the download address under it.
    "PRIVACY_API_PUBLIC_URL": "http://localhost:8001",
    # A request is an address, a type and at most three corrected values: 16 KiB is plenty.
    "PRIVACY_API_MAX_BODY_BYTES": "16384",
    # Each new request mails a code: these bound how often one inbox can be written to, and how
    # many requests one client may file, so the API cannot be used to flood somebody's mailbox.
    "PRIVACY_API_REQUESTS_PER_ADDRESS_PER_HOUR": "3",
    "PRIVACY_API_REQUESTS_PER_CLIENT_PER_MINUTE": "10",
    # What a 503 (database or mail server down) tells the client to wait before it sends again.
    "PRIVACY_API_RETRY_AFTER_S": "30",
    # The mailed code: valid 15 minutes, 5 tries (5 chances in 10^8 for somebody guessing 8 digits).
    "VERIFICATION_CODE_TTL_S": "900",
    "VERIFICATION_MAX_ATTEMPTS": "5",
    # Outgoing mail (verification codes, completion notices). The embedded stack records its own
    # local server here; production names its relay, with a login only over STARTTLS.
    "SMTP_HOST": "localhost",
    "SMTP_PORT": "1025",
    "SMTP_FROM": "privacy@localhost",
    "SMTP_USER": "",
    "SMTP_PASSWORD": "",
    "SMTP_STARTTLS": "false",
    "SMTP_TIMEOUT_S": "10",
    # The DPO console (python -m console): internal, so it listens on the loopback by default.
    "CONSOLE_HOST": "127.0.0.1",
    "CONSOLE_PORT": "8002",
    # A DPO signs in again after this many hours: a working day, so a forgotten tab expires overnight.
    "CONSOLE_SESSION_HOURS": "8",
    # Send the session cookie over HTTPS only: set to true behind TLS (a reverse proxy), as in production.
    "CONSOLE_SECURE_COOKIES": "false",
    # The Host headers the console answers (comma-separated, each with any port unless one is
    # given; * for any): a page of any site whose name an attacker points at 127.0.0.1 (DNS
    # rebinding) sends its own name, so only the loopback's names by default.
    "CONSOLE_ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
    # The live dashboard (python -m dashboard): internal, so it listens on the loopback by default.
    "DASHBOARD_HOST": "127.0.0.1",
    "DASHBOARD_PORT": "8003",
    # The Host headers the dashboard answers, as CONSOLE_ALLOWED_HOSTS.
    "DASHBOARD_ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
    # Every HTTP service (collector, privacy API, console, dashboard): a request's headers must
    # arrive within this many seconds of its first byte (a browser sends them in one packet; 10 s
    # leaves a slow mobile link room), and its body within HTTP_BODY_TIMEOUT_S of the headers
    # (the collector's 1 MiB at 300 kbit/s takes 28 s); a client dripping bytes to hold
    # connections open is closed after them.
    "HTTP_HEADER_TIMEOUT_S": "10",
    "HTTP_BODY_TIMEOUT_S": "30",
    # The scheduler (python -m scheduler), every time in UTC. The nightly batch waits a quarter of an
    # hour past midnight so the consumers have stored the day's last events; the reports follow it,
    # retention runs after them, and the GDPR audit report is weekly.
    "SCHEDULER_BATCH_AT": "00:15",
    # Whether the nightly comparison repairs drifting closed days (compare_batch_vs_stream --repair):
    # off by default, as a repair rewrites streaming figures; a drift then fails the run for a person
    # to look at.
    "SCHEDULER_REPAIR": "false",
    "SCHEDULER_DAILY_REPORT_AT": "01:00",
    "SCHEDULER_AUDIT_REPORT_AT": "mon 02:00",
    "SCHEDULER_RETENTION_AT": "03:00",
    # Erasure upkeep, after retention: the lists of each person's event days (gdpr.person_days: the
    # days retention dropped go, the closed days not yet listed come), then the index cleanup that
    # large erasures left for later (--finish-vacuum).
    "SCHEDULER_ERASURE_UPKEEP_AT": "03:30",
    # The hourly check of privacy requests' deadlines, at this minute of every hour, warns of open
    # requests overdue or due within SCHEDULER_DEADLINE_WARN_DAYS.
    "SCHEDULER_DEADLINE_CHECK_MINUTE": "5",
    "SCHEDULER_DEADLINE_WARN_DAYS": "7",
    # On start, run once each job whose last successful run is older than its latest due time.
    "SCHEDULER_CATCH_UP": "true",
    # A job still running after this long is stuck, not slow: it is stopped and recorded as failed.
    "SCHEDULER_JOB_TIMEOUT_S": "3600",
    # Where every service's Prometheus exporter (--metrics-port) listens: the loopback, as the
    # metrics are for the operators' Prometheus; compose sets 0.0.0.0 inside each container.
    "METRICS_HOST": "127.0.0.1",
    # false: a service started without --metrics-port serves no metrics, instead of taking its
    # default port (the test suite and the benchmarks, which run many instances side by side).
    "METRICS_ENABLED": "true",
    # A second instance of a service on one host finds its default metrics port taken: it tries the
    # default plus 100, plus 200, ... this many times (Spark's UI tries 16 ports too). Steps of 100
    # keep clear of the other services' defaults (9101-9107), so each stays where Prometheus looks.
    "METRICS_PORT_RETRIES": "16",
    # The most one event may carry, in euros: no real purchase comes near it, and at this maximum
    # the day's totals (NUMERIC(38, 2), sql/028) cannot overflow whatever the rate. At most
    # 9999999999.99, what events_raw.amount (NUMERIC(12, 2)) holds.
    "MAX_EVENT_AMOUNT": "1000000.00",
    # How many partitions of past days one raw-events batch may create (today and the week ahead
    # are always kept): each one takes locks and moves rows, and a 50 KB request once spread over
    # 380 days created 380 of them. The rest wait in the default partition for the nightly
    # retention run, which gives every day found there its partition.
    "PARTITIONS_PER_BATCH": "8",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
CONSENT_MODES = ("required", "assumed")
# Each component's database login (created by sql/015) and the variable holding its password.
LOGIN_PASSWORD_VARIABLES: dict[str, str] = {
    "login_collector": "DB_PASSWORD_COLLECTOR",
    "login_consumers": "DB_PASSWORD_CONSUMERS",
    "login_gdpr": "DB_PASSWORD_GDPR",
    "login_privacy_api": "DB_PASSWORD_PRIVACY_API",
    "login_console": "DB_PASSWORD_CONSOLE",
    "login_reports": "DB_PASSWORD_REPORTS",
    "login_auditor": "DB_PASSWORD_AUDITOR",
    "login_batch": "DB_PASSWORD_BATCH",
    "login_monitor": "DB_PASSWORD_MONITOR",
    "login_retention": "DB_PASSWORD_RETENTION",
    "login_scheduler": "DB_PASSWORD_SCHEDULER",
    "login_dashboard": "DB_PASSWORD_DASHBOARD",
}


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
    # Login name -> password, for core.db.connect(role=...) and the migrator; never shown.
    login_passwords: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    def login_password(self, login: str) -> str:
        """The password of a component's login; ConfigError naming its variable when none is set."""
        password = self.login_passwords.get(login)
        if not password:
            raise ConfigError(f"no password for database login {login!r}: set {LOGIN_PASSWORD_VARIABLES.get(login, 'it')}")
        return password


@dataclass(frozen=True)
class KafkaSettings:
    """Where the broker is and which topic carries the events."""

    bootstrap_servers: str
    topic: str
    partitions: int
    # retention.ms of the topic when the platform creates it.
    retention_hours: int = 168


@dataclass(frozen=True)
class SinkSettings:
    """How the consumers batch: N records or T seconds, whichever comes first."""

    batch_size: int
    batch_seconds: float


@dataclass(frozen=True)
class MetadataLimits:
    """What one event's metadata may hold (core.pii.metadata_refusal): keys and values counted
    together at any depth, the longest string, and its size as JSON."""

    max_values: int = 128
    max_string_chars: int = 1024
    max_bytes: int = 4096


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
    # The consumers' bounds, checked before the collector redacts: over one, a 413.
    metadata_limits: MetadataLimits = MetadataLimits()
    # MAX_EVENT_AMOUNT, as the consumers hold events to it: above it an event is rejected.
    max_event_amount: Decimal = Decimal("1000000.00")
    client_rate_per_s: int = 10


@dataclass(frozen=True)
class PrivacyApiSettings:
    """Where the privacy-request API listens, what it accepts, and how a mailed code is checked."""

    host: str = "127.0.0.1"
    port: int = 8001
    public_url: str = "http://localhost:8001"
    max_body_bytes: int = 16_384
    requests_per_address_per_hour: int = 3
    requests_per_client_per_minute: int = 10
    retry_after_s: int = 30
    code_ttl_s: int = 900
    max_attempts: int = 5


@dataclass(frozen=True)
class MailSettings:
    """The SMTP server mail goes through; the password is never shown (repr, logs, messages)."""

    host: str = "localhost"
    port: int = 1025
    sender: str = "privacy@localhost"
    user: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False
    timeout_s: float = 10.0

    @property
    def display(self) -> str:
        """``smtp://host:port`` with the login's user and STARTTLS, never the password."""
        login = f"{self.user}@" if self.user else ""
        return f"smtp://{login}{self.host}:{self.port}" + (" (STARTTLS)" if self.starttls else "")


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# A Host header or an allowed host: a name or an IPv4 address, or an IPv6 address in brackets;
# then maybe a port.
HOST_PATTERN = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?")


@dataclass(frozen=True)
class ConsoleSettings:
    """Where the DPO console listens, the hosts it answers, and how long its sessions last."""

    host: str = "127.0.0.1"
    port: int = 8002
    session_hours: int = 8
    secure_cookies: bool = False
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS


@dataclass(frozen=True)
class DashboardSettings:
    """Where the live dashboard listens and the hosts it answers."""

    host: str = "127.0.0.1"
    port: int = 8003
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS


@dataclass(frozen=True)
class HttpSettings:
    """The deadlines of every HTTP service for a request's headers and its body."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


@dataclass(frozen=True)
class MetricsSettings:
    """Where the services' Prometheus exporters listen (core.metrics); each one's port is its
    --metrics-port, by default its own (``enabled``) or none; a default port that is taken moves
    up by 100 at most ``port_retries`` times."""

    host: str = "127.0.0.1"
    enabled: bool = True
    port_retries: int = 16


@dataclass(frozen=True)
class RetentionSettings:
    """How many days each kind of data is kept (storage limitation, GDPR Art. 5(1)(e)); access
    exports follow ``Settings.access_export_days``."""

    raw_event_days: int = 395
    dead_letter_days: int = 30
    privacy_request_days: int = 1096
    report_days: int = 400


# Weekdays as the scheduler's settings name them (SCHEDULER_AUDIT_REPORT_AT=mon 02:00); index 0 is
# Monday, as date.weekday() counts.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SchedulerSettings:
    """When ``python -m scheduler`` runs each periodic job (every time in UTC) and how."""

    batch_at: time = time(0, 15)
    repair: bool = False
    daily_report_at: time = time(1, 0)
    audit_report_weekday: int = 0
    audit_report_at: time = time(2, 0)
    retention_at: time = time(3, 0)
    erasure_upkeep_at: time = time(3, 30)
    deadline_check_minute: int = 5
    deadline_warn_days: int = 7
    catch_up: bool = True
    job_timeout_s: float = 3600.0

    def describe(self) -> str:
        """One log line with the scheduler's settings (it has no secret)."""
        return (
            f"batch={self.batch_at:%H:%M} repair={self.repair} daily_report={self.daily_report_at:%H:%M} "
            f"audit_report={WEEKDAYS[self.audit_report_weekday]} {self.audit_report_at:%H:%M} "
            f"retention={self.retention_at:%H:%M} erasure_upkeep={self.erasure_upkeep_at:%H:%M} "
            f"deadline_check=:{self.deadline_check_minute:02d} "
            f"warn_days={self.deadline_warn_days} catch_up={self.catch_up} job_timeout={self.job_timeout_s:g}s (UTC)"
        )


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
    console: ConsoleSettings = ConsoleSettings()
    dashboard: DashboardSettings = DashboardSettings()
    privacy_api: PrivacyApiSettings = PrivacyApiSettings()
    mail: MailSettings = MailSettings()
    access_export_days: int = 7
    retention: RetentionSettings = RetentionSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    # The GDPR key is checked where it is used (proof hashes), not at every start: consumers,
    # the generator and the reports never need it, so they run against any stack as designed.
    hmac_key_text: str = field(default="", repr=False)
    hmac_key_refusal: str | None = None
    metrics: MetricsSettings = MetricsSettings()
    audit_seal_key_text: str = field(default="", repr=False)
    audit_seal_key_refusal: str | None = None
    metadata_limits: MetadataLimits = MetadataLimits()
    # The largest amount one event may carry (MAX_EVENT_AMOUNT): above it, amount_out_of_range.
    max_event_amount: Decimal = Decimal("1000000.00")
    # How many past days' partitions of events_raw one batch may create (PARTITIONS_PER_BATCH).
    partitions_per_batch: int = 8
    http: HttpSettings = HttpSettings()

    @property
    def gdpr_hmac_key(self) -> bytes:
        """The key of the proof hashes; ConfigError (one line, naming the variable) when it is
        empty, or the public development default anywhere but on the embedded stack."""
        if self.hmac_key_refusal is not None:
            raise ConfigError(self.hmac_key_refusal)
        return self.hmac_key_text.encode("utf-8")

    @property
    def audit_seal_key(self) -> bytes:
        """The key of the audit trail's seals; ConfigError (one line) when it is empty, or the
        public development default anywhere but on the embedded stack."""
        if self.audit_seal_key_refusal is not None:
            raise ConfigError(self.audit_seal_key_refusal)
        return self.audit_seal_key_text.encode("utf-8")

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


def log_format(environ: Mapping[str, str] | None = None) -> str:
    """LOG_FORMAT (text or json), validated, read as log_level() is: every entry point's logging
    set-up (core.cli.setup_logging) takes it from here."""
    env = os.environ if environ is None else environ
    raw = env.get("LOG_FORMAT") or read_env_file(stack_file(env)).get("LOG_FORMAT") or DEFAULTS["LOG_FORMAT"]
    fmt = raw.strip().lower()
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT={raw.strip()!r} is not one of {', '.join(LOG_FORMATS)}")
    return fmt


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
        # An empty one is refused where it is used (core.db.connect names the variable).
        login_passwords={login: values[var] for login, var in LOGIN_PASSWORD_VARIABLES.items() if values[var]},
    )


def _kafka(values: Mapping[str, str], bootstrap: str) -> KafkaSettings:
    if not bootstrap.strip():
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is empty")
    hours, days = _int(values, "KAFKA_RETENTION_HOURS"), _days(values, "RETENTION_DAYS")
    if hours > days * 24:
        raise ConfigError(
            f"KAFKA_RETENTION_HOURS={hours} would keep the events in Kafka longer than RETENTION_DAYS={days} keeps them"
            " in events_raw: lower it"
        )
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topic=_name(values, "EVENTS_TOPIC"),
        partitions=_int(values, "EVENTS_TOPIC_PARTITIONS"),
        retention_hours=hours,
    )


# A hundred years: beyond it a cutoff date is a typo, not a policy.
MAX_RETENTION_DAYS = 36_525


def _days(values: Mapping[str, str], key: str) -> int:
    """A retention in days: 1 at least (0 or less would remove today's data), a century at most."""
    days = _int(values, key)
    if days > MAX_RETENTION_DAYS:
        raise ConfigError(f"{key}={days} is more than {MAX_RETENTION_DAYS} days (a century)")
    return days


def _retention(values: Mapping[str, str]) -> RetentionSettings:
    return RetentionSettings(
        raw_event_days=_days(values, "RETENTION_DAYS"),
        dead_letter_days=_days(values, "DEAD_LETTER_RETENTION_DAYS"),
        privacy_request_days=_days(values, "PRIVACY_REQUEST_RETENTION_DAYS"),
        report_days=_days(values, "REPORT_RETENTION_DAYS"),
    )


def load_database_settings(
    url: str | None = None, environ: Mapping[str, str] | None = None, passwords: Mapping[str, str] | None = None
) -> DatabaseSettings:
    """The database settings alone, for ``url`` (default: DATABASE_URL) and with ``passwords``
    (DB_PASSWORD_* variable -> value) over the configured ones: the embedded stack talks to the
    PostgreSQL it started, with the logins' passwords it chose, before it has recorded either."""
    values = {**merged_values(environ), **(passwords or {})}
    return _database(values, values["DATABASE_URL"] if url is None else url)


def set_in_environment(keys: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Those of ``keys`` the environment itself sets (not the defaults, not a stack file): the
    embedded stack lets them win over the passwords it chose."""
    env = os.environ if environ is None else environ
    return {key: env[key] for key in keys if env.get(key)}


def load_kafka_settings(bootstrap: str | None = None, environ: Mapping[str, str] | None = None) -> KafkaSettings:
    """The Kafka settings alone, for ``bootstrap`` (default: KAFKA_BOOTSTRAP_SERVERS)."""
    values = merged_values(environ)
    return _kafka(values, values["KAFKA_BOOTSTRAP_SERVERS"] if bootstrap is None else bootstrap)


def on_embedded_stack(environ: Mapping[str, str] | None = None) -> bool:
    """True when the DATABASE_URL in effect is the one the embedded stack recorded in its stack
    file: the developer's own throwaway PostgreSQL, never a shared or production one."""
    recorded = read_env_file(stack_file(environ)).get("DATABASE_URL")
    return recorded is not None and recorded == merged_values(environ)["DATABASE_URL"]


def _hmac_key_refusal(
    values: Mapping[str, str], environ: Mapping[str, str] | None, variable: str = "GDPR_HMAC_KEY"
) -> str | None:
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


def _consent_mode(values: Mapping[str, str]) -> str:
    mode = values["CONSENT_MODE"].strip().lower()
    if mode not in CONSENT_MODES:
        raise ConfigError(f"CONSENT_MODE={mode!r} is not one of {', '.join(CONSENT_MODES)}")
    return mode


def _console(values: Mapping[str, str]) -> ConsoleSettings:
    port = _int(values, "CONSOLE_PORT")
    if port > 65535:
        raise ConfigError(f"CONSOLE_PORT={port} is not a port number")
    hours = _int(values, "CONSOLE_SESSION_HOURS")
    if hours > 24 * 7:
        raise ConfigError(f"CONSOLE_SESSION_HOURS={hours}: a session may last a week at most")
    secure = values["CONSOLE_SECURE_COOKIES"].strip().lower()
    if secure not in ("true", "false"):
        raise ConfigError(f"CONSOLE_SECURE_COOKIES={secure!r} is not true or false")
    return ConsoleSettings(
        host=_name(values, "CONSOLE_HOST"),
        port=port,
        session_hours=hours,
        secure_cookies=secure == "true",
        allowed_hosts=_hosts(values, "CONSOLE_ALLOWED_HOSTS"),
    )


def _dashboard(values: Mapping[str, str]) -> DashboardSettings:
    return DashboardSettings(
        host=_name(values, "DASHBOARD_HOST"),
        port=_port(values, "DASHBOARD_PORT"),
        allowed_hosts=_hosts(values, "DASHBOARD_ALLOWED_HOSTS"),
    )


def _hosts(values: Mapping[str, str], key: str) -> tuple[str, ...]:
    """Comma-separated host names or addresses, each with or without a port, an IPv6 address in
    brackets, or * for any; ConfigError naming ``key`` for one that is none, or for none at all."""
    hosts = []
    for item in values[key].split(","):
        host = item.strip().lower()
        if host and host != "*" and HOST_PATTERN.fullmatch(host) is None:
            raise ConfigError(f"{key}: {item.strip()!r} is no host name (e.g. localhost, 127.0.0.1, [::1]:8002)")
        if host:
            hosts.append(host)
    if not hosts:
        raise ConfigError(f"{key} is empty: name the hosts the service is reached at, e.g. localhost")
    return tuple(hosts)


def _http(values: Mapping[str, str]) -> HttpSettings:
    return HttpSettings(
        header_timeout_s=_float(values, "HTTP_HEADER_TIMEOUT_S"), body_timeout_s=_float(values, "HTTP_BODY_TIMEOUT_S")
    )


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
        metadata_limits=_metadata_limits(values),
        max_event_amount=_amount(values, "MAX_EVENT_AMOUNT"),
        client_rate_per_s=_int(values, "COLLECTOR_CLIENT_RATE_PER_S", minimum=0),
    )


def _port(values: Mapping[str, str], key: str) -> int:
    port = _int(values, key)
    if port > 65535:
        raise ConfigError(f"{key}={port} is not a port number")
    return port


def _flag(values: Mapping[str, str], key: str) -> bool:
    raw = values[key].strip().lower()
    if raw not in ("true", "false"):
        raise ConfigError(f"{key}={raw!r} is not true or false")
    return raw == "true"


def _privacy_api(values: Mapping[str, str]) -> PrivacyApiSettings:
    public_url = values["PRIVACY_API_PUBLIC_URL"].strip().rstrip("/")
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"PRIVACY_API_PUBLIC_URL={public_url!r} is not an http(s) URL such as https://privacy.example.com")
    return PrivacyApiSettings(
        host=_name(values, "PRIVACY_API_HOST"),
        port=_port(values, "PRIVACY_API_PORT"),
        public_url=public_url,
        max_body_bytes=_int(values, "PRIVACY_API_MAX_BODY_BYTES", minimum=1024),
        requests_per_address_per_hour=_int(values, "PRIVACY_API_REQUESTS_PER_ADDRESS_PER_HOUR"),
        requests_per_client_per_minute=_int(values, "PRIVACY_API_REQUESTS_PER_CLIENT_PER_MINUTE"),
        retry_after_s=_int(values, "PRIVACY_API_RETRY_AFTER_S"),
        # Under a minute nobody can read the mail and type the code.
        code_ttl_s=_int(values, "VERIFICATION_CODE_TTL_S", minimum=60),
        max_attempts=_int(values, "VERIFICATION_MAX_ATTEMPTS"),
    )


# A login may cross the network in clear only to the machine itself.
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _mail(values: Mapping[str, str]) -> MailSettings:
    sender = values["SMTP_FROM"].strip()
    if sender.count("@") != 1 or not sender.isprintable() or any(c.isspace() or c in "<>,;" for c in sender):
        raise ConfigError(f"SMTP_FROM={sender!r} is not a plain address such as privacy@example.com")
    user, password = values["SMTP_USER"].strip(), values["SMTP_PASSWORD"]
    if bool(user) != bool(password):
        raise ConfigError("set both SMTP_USER and SMTP_PASSWORD for a login to the SMTP server, or neither")
    host, starttls = _name(values, "SMTP_HOST"), _flag(values, "SMTP_STARTTLS")
    if password and not starttls and host.lower() not in _LOOPBACK:
        raise ConfigError(
            f"SMTP_PASSWORD is set but SMTP_STARTTLS is off: the password would cross the network to {host} in clear;"
            " set SMTP_STARTTLS=true"
        )
    return MailSettings(
        host=host,
        port=_port(values, "SMTP_PORT"),
        sender=sender,
        user=user,
        password=password,
        starttls=starttls,
        timeout_s=_float(values, "SMTP_TIMEOUT_S"),
    )


def _time_of_day(values: Mapping[str, str], key: str) -> time:
    """HH:MM, a time of day in UTC."""
    raw = values[key].strip()
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", raw)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ConfigError(f"{key}={raw!r} is not a time of day HH:MM (UTC), such as 00:15")
    return time(int(match[1]), int(match[2]))


def _weekday_and_time(values: Mapping[str, str], key: str) -> tuple[int, time]:
    """A weekday and a time of day in UTC, such as ``mon 02:00``."""
    raw = values[key].strip()
    day, _, at = raw.lower().partition(" ")
    try:
        if day in WEEKDAYS:
            return WEEKDAYS.index(day), _time_of_day({key: at}, key)
    except ConfigError:
        pass
    raise ConfigError(f"{key}={raw!r} is not a weekday and a time (UTC), such as 'mon 02:00'")


def _scheduler(values: Mapping[str, str]) -> SchedulerSettings:
    minute = _int(values, "SCHEDULER_DEADLINE_CHECK_MINUTE", minimum=0)
    if minute > 59:
        raise ConfigError(f"SCHEDULER_DEADLINE_CHECK_MINUTE={minute} is not a minute of the hour (0-59)")
    weekday, audit_at = _weekday_and_time(values, "SCHEDULER_AUDIT_REPORT_AT")
    return SchedulerSettings(
        batch_at=_time_of_day(values, "SCHEDULER_BATCH_AT"),
        repair=_flag(values, "SCHEDULER_REPAIR"),
        daily_report_at=_time_of_day(values, "SCHEDULER_DAILY_REPORT_AT"),
        audit_report_weekday=weekday,
        audit_report_at=audit_at,
        retention_at=_time_of_day(values, "SCHEDULER_RETENTION_AT"),
        erasure_upkeep_at=_time_of_day(values, "SCHEDULER_ERASURE_UPKEEP_AT"),
        deadline_check_minute=minute,
        deadline_warn_days=_int(values, "SCHEDULER_DEADLINE_WARN_DAYS"),
        catch_up=_flag(values, "SCHEDULER_CATCH_UP"),
        job_timeout_s=_float(values, "SCHEDULER_JOB_TIMEOUT_S"),
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
        audit_seal_key_text=values["AUDIT_SEAL_KEY"],
        audit_seal_key_refusal=_hmac_key_refusal(values, environ, "AUDIT_SEAL_KEY"),
        consent_mode=_consent_mode(values),
        collector=_collector(values),
        console=_console(values),
        dashboard=_dashboard(values),
        access_export_days=_days(values, "ACCESS_EXPORT_DAYS"),
        retention=_retention(values),
        privacy_api=_privacy_api(values),
        mail=_mail(values),
        scheduler=_scheduler(values),
        metrics=MetricsSettings(
            host=_name(values, "METRICS_HOST"),
            enabled=_flag(values, "METRICS_ENABLED"),
            port_retries=_int(values, "METRICS_PORT_RETRIES", minimum=0),
        ),
        max_event_amount=_amount(values, "MAX_EVENT_AMOUNT"),
        partitions_per_batch=_int(values, "PARTITIONS_PER_BATCH", minimum=0),
        metadata_limits=_metadata_limits(values),
        http=_http(values),
    )


def _metadata_limits(values: Mapping[str, str]) -> MetadataLimits:
    return MetadataLimits(
        max_values=_int(values, "METADATA_MAX_VALUES"),
        max_string_chars=_int(values, "METADATA_MAX_STRING_CHARS"),
        max_bytes=_int(values, "METADATA_MAX_BYTES", minimum=2),  # "{}"
    )


def _amount(values: Mapping[str, str], key: str) -> Decimal:
    """An amount in euros, exact to the cent, above 0 and at most what events_raw holds."""
    raw = values[key].strip()
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise ConfigError(f"{key}={raw!r} is not an amount in euros, such as 1000000.00")
    if not Decimal(0) < amount <= MAX_AMOUNT or amount != amount.quantize(Decimal("0.01")):
        raise ConfigError(f"{key}={raw} must be above 0, at most {MAX_AMOUNT} (what events_raw.amount holds), in cents")
    return amount.quantize(Decimal("0.01"))
