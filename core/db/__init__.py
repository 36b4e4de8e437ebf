"""PostgreSQL connections with errors a user can act on, and the idempotent schema migrator."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import errorcodes, sql

from core.config import COMPONENT_LOGINS, LOGIN_PASSWORD_VARIABLES, PROJECT_ROOT, DatabaseSettings, mask_url
from core.errors import ConfigError, ServiceUnavailable

logger = logging.getLogger(__name__)

Cursor = psycopg2.extensions.cursor

# Least-privilege group roles created by sql/003_gdpr.sql; each component connects with its own
# login, a member of its group only (sql/015).
ANALYTICS_ROLE = "analytics_reader"
INGEST_ROLE = "ingest_writer"
GDPR_ROLE = "gdpr_processor"
AUDITOR_ROLE = "privacy_auditor"
# The HTTP collector's role (sql/010): reads the write keys, records consent.
COLLECTOR_ROLE = "event_collector"
# The privacy-request API and the DPO console (sql/014).
PRIVACY_API_ROLE = "privacy_api"
CONSOLE_ROLE = "dpo_console"
# The batch metrics, the comparison and its repair; consumer status, lag and dead letters (sql/015).
BATCH_ROLE = "batch_writer"
MONITOR_ROLE = "pipeline_monitor"
# Storage limitation: python -m gdpr.retention removes what is older than its retention (sql/018).
RETENTION_ROLE = "retention_worker"
# The scheduler records its runs and checks privacy requests' deadlines (sql/022); each job it runs
# is a command that logs in as its own component.
SCHEDULER_ROLE = "scheduler_runner"
# The live dashboard reads pipeline progress, today's metrics and counts of requests, runs and dead
# letters, never personal data (sql/024).
DASHBOARD_ROLE = "dashboard_reader"
# Per-person RFM scores and lifetime values: reads the summaries' user ids, writes the scores (sql/039).
ANALYTICS_MODEL_ROLE = "analytics_modeller"
# The analysts' API: reads who holds a token (sql/045); its releases go through analytics.release.
ANALYSTS_API_ROLE = "analysts_api"

# The login of each group role (sql/015, sql/018, sql/022, sql/024, sql/039, sql/045), from the one table of logins
# (core.config.COMPONENT_LOGINS, which also names each one's password variable).
LOGINS: dict[str, str] = {entry.role: entry.login for entry in COMPONENT_LOGINS}

SQL_DIR = PROJECT_ROOT / "sql"
START_HINT = "start it with `make up` (embedded) or `docker compose up -d`, or set DATABASE_URL"
# Serialises concurrent migrators (compose's init service and a developer's `make up`): an empty
# table only the owner may lock (an advisory key, as before, any component's login could hold). A
# migrator waits this long for another (under half the statement timeout), then says so.
MIGRATION_LOCK_TABLE = "schema_migrations_lock"
MIGRATION_LOCK_WAIT_MS = 300_000


# SQLSTATE classes (PostgreSQL's "Appendix A"): which failures are worth retrying, which mean
# the data itself was refused. Connection exceptions (08), transaction rollbacks (40:
# serialization failure, deadlock), too many connections (53300), a lock not had within
# lock_timeout (55P03) and a server shutting down or starting (57P01-57P03) pass; a full disk
# (53100), a statement timeout (57014) or a permission fail the same way on every attempt and are
# reported instead.
TRANSIENT_CLASSES = ("08", "40")
TRANSIENT_CODES = ("53300", "55P03", "57P01", "57P02", "57P03")
DATA_ERROR_CLASSES = ("22", "23")
QUERY_CANCELED = "57014"


def is_transient(error: BaseException) -> bool:
    """True when retrying the same transaction later may succeed."""
    if isinstance(error, psycopg2.InterfaceError):
        return True  # the connection is closed: reconnect
    if not isinstance(error, psycopg2.Error):
        return False
    code = error.pgcode
    if code is None:
        # No SQLSTATE: the client lost the server (connection reset, server gone).
        return isinstance(error, psycopg2.OperationalError)
    return code[:2] in TRANSIENT_CLASSES or code in TRANSIENT_CODES


def is_data_error(error: BaseException) -> bool:
    """True when the database refused the data itself (data exception or constraint violation)."""
    return isinstance(error, psycopg2.Error) and error.pgcode is not None and error.pgcode[:2] in DATA_ERROR_CLASSES


def is_statement_timeout(error: BaseException) -> bool:
    return isinstance(error, psycopg2.Error) and error.pgcode == QUERY_CANCELED


def describe_error(error: BaseException) -> str:
    """What went wrong without quoting any data: for a data error (class 22 or 23) its SQLSTATE,
    the condition's name and the constraint, as PostgreSQL's message may quote the value
    (``invalid input syntax for type uuid: "..."``); otherwise SQLSTATE and the primary message
    (details and context may quote a row)."""
    if not isinstance(error, psycopg2.Error):
        return type(error).__name__
    code = error.pgcode
    if is_data_error(error) and code is not None:
        constraint = error.diag.constraint_name if error.diag is not None else None
        name = errorcodes.lookup(code).lower()
        return f"{code}: {name}" + (f" ({constraint})" if constraint else "")
    primary = error.diag.message_primary if error.diag is not None else None
    text = primary or (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"{code}: {text}" if code else text


def connect(
    settings: DatabaseSettings, *, application_name: str = "analytics", role: str | None = None
) -> psycopg2.extensions.connection:
    """Open a connection: with ``role``, as that group role's login (sql/015), a member of that
    role only, so only its privileges apply and no SET ROLE gives more; without, as DATABASE_URL's
    user (the migration owner: migrations and operators' tools). The login uses DATABASE_URL's
    host, port, database and options. ServiceUnavailable (naming the server and how to start it)
    when PostgreSQL does not answer; ConfigError (naming the login and its password variable)
    when it refuses the login."""
    # None leaves DATABASE_URL's user and password in place.
    login = None if role is None else login_of(role)
    password = None if login is None else settings.login_password(login)
    try:
        conn = psycopg2.connect(
            settings.url,
            application_name=application_name,
            connect_timeout=5,
            options=f"-c statement_timeout={settings.statement_timeout_ms} -c timezone=UTC -c datestyle=ISO",
            user=login,
            password=password,
        )
    except psycopg2.OperationalError as e:
        text = str(e).strip()
        reason = text.splitlines()[0] if text else "connection failed"
        if login is not None and _refused_login(text, login):
            variable = LOGIN_PASSWORD_VARIABLES[login]
            raise ConfigError(
                f"PostgreSQL at {_server(settings.url)} refused login {login!r} ({reason}): apply the migrations "
                f"(`make up` or `python -m core.db`), which create it and set its password from {variable}, "
                f"or set {variable} to the password it has"
            ) from e
        raise ServiceUnavailable(f"PostgreSQL at {mask_url(settings.url)} is not reachable ({reason}): {START_HINT}") from e
    return conn


def login_of(role: str) -> str:
    """The login of a group role (``LOGINS``); ValueError for a role that has none."""
    try:
        return LOGINS[role]
    except KeyError:
        raise ValueError(f"no login connects as database role {role!r}; known: {', '.join(sorted(LOGINS))}") from None


def _refused_login(message: str, login: str) -> bool:
    """True when the server answered and refused ``login`` (a wrong password, no such role, no
    password given) rather than not answering: its messages name the user, quoted."""
    return f'"{login}"' in message or "no password supplied" in message


def _server(url: str) -> str:
    """host:port/database of a URL, for messages about another user than the URL's."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


@contextmanager
def connection(
    settings: DatabaseSettings, *, application_name: str = "analytics", role: str | None = None
) -> Iterator[psycopg2.extensions.connection]:
    """A connection closed on exit; transactions are the caller's (``with conn:`` commits)."""
    conn = connect(settings, application_name=application_name, role=role)
    try:
        yield conn
    finally:
        conn.close()


def migration_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    """The numbered migration files, in the order they apply."""
    return sorted(p for p in sql_dir.glob("[0-9][0-9][0-9]_*.sql"))


def migrate(settings: DatabaseSettings, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every migration not applied yet, each in its own transaction; return their names.

    An applied file is never edited: its checksum is recorded and a changed file is an error.
    """
    applied_now: list[str] = []
    with _migration_lock(settings), connection(settings, application_name="migrator") as conn:
        with conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version TEXT PRIMARY KEY, checksum TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
        for path in migration_files(sql_dir):
            checksum = hashlib.sha256(path.read_bytes()).hexdigest()
            with conn, conn.cursor() as cur:
                cur.execute("SELECT checksum FROM schema_migrations WHERE version = %s", (path.name,))
                row = cur.fetchone()
                if row is not None:
                    if row[0] != checksum:
                        logger.warning("migration %s changed after it was applied; add a new file instead", path.name)
                    continue
                cur.execute(path.read_text(encoding="utf-8"))
                cur.execute("INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)", (path.name, checksum))
            applied_now.append(path.name)
            logger.info("applied migration %s", path.name)
        set_login_passwords(conn, settings)
    return applied_now


@contextmanager
def _migration_lock(settings: DatabaseSettings) -> Iterator[None]:
    """Hold the migration lock for the block, on a connection of its own whose transaction lasts
    as long (a table lock: no xid, so it holds back no vacuum); ServiceUnavailable when another
    migrator holds it past the wait."""
    timeout = settings.statement_timeout_ms
    wait_ms = min(MIGRATION_LOCK_WAIT_MS, max(timeout // 2, 1)) if timeout > 0 else MIGRATION_LOCK_WAIT_MS
    with connection(settings, application_name="migrator-lock") as conn:
        conn.autocommit = True
        # A second migrator may create it at the same moment.
        with conn.cursor() as cur, suppress(psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateTable):
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ()").format(sql.Identifier(MIGRATION_LOCK_TABLE)))
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = %s", (f"{wait_ms}ms",))
            try:
                cur.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(MIGRATION_LOCK_TABLE)))
            except psycopg2.errors.LockNotAvailable as e:
                raise ServiceUnavailable(
                    f"another migrator has held the migration lock for {wait_ms / 1000:.0f} s: run again once it has finished"
                ) from e
        try:
            yield
        finally:
            if not conn.closed:
                conn.rollback()


def set_login_passwords(conn: psycopg2.extensions.connection, settings: DatabaseSettings) -> int:
    """Give every component login the migrations created its configured password (on every run,
    so a changed DB_PASSWORD_* takes effect with the next migration); return how many were set.
    The password is hashed here (SCRAM, or whatever the server's password_encryption asks for),
    so it never reaches the server, nor its log, in clear."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(LOGINS.values()),))
        existing = {name for (name,) in cur.fetchall()}
    hashed: dict[str, str] = {}
    for login in sorted(existing):
        password = settings.login_passwords.get(login)
        if not password:
            logger.warning("no password configured for login %s (%s): left as it was", login, LOGIN_PASSWORD_VARIABLES[login])
            continue
        hashed[login] = psycopg2.extensions.encrypt_password(password, login, conn)
    with conn, conn.cursor() as cur:
        for login, verifier in hashed.items():
            cur.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD %s").format(sql.Identifier(login)), (verifier,))
    if hashed:
        logger.info("set the passwords of %d component logins", len(hashed))
    return len(hashed)
