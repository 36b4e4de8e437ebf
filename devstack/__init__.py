"""The embedded developer stack (Tansu + PostgreSQL + a local SMTP server, no Docker): an application beside the stages.

``python -m devstack up|down|status`` (``make up``, ``make down``, ``make status``); the test
suite and the benchmarks start and stop it through the functions re-exported here.
"""

from devstack.stack import (
    DEFAULT_DATA_DIR,
    HOST,
    MAIL_DIR,
    PORTS_FILE,
    SERVER_TUNING,
    STACK_ENV_FILE,
    StackInfo,
    down,
    free_port,
    mail_port,
    port_is_free,
    postgres_version,
    recorded_ports,
    start_postgres,
    status,
    stop_mail,
    stop_postgres,
    stop_tansu,
    superuser_url,
    tansu_command,
    up,
)

__all__ = [
    "DEFAULT_DATA_DIR",
    "HOST",
    "MAIL_DIR",
    "PORTS_FILE",
    "SERVER_TUNING",
    "STACK_ENV_FILE",
    "StackInfo",
    "down",
    "free_port",
    "mail_port",
    "port_is_free",
    "postgres_version",
    "recorded_ports",
    "start_postgres",
    "status",
    "stop_mail",
    "stop_postgres",
    "stop_tansu",
    "superuser_url",
    "tansu_command",
    "up",
]
