"""Which stack the integration tests run against, decided in one place for the fixtures and the
report header (psycopg's ``tests/fix_db.py`` says which server a run used, too)."""

from __future__ import annotations

import os
from typing import Literal

from core.config import mask_url

Kind = Literal["existing", "testcontainers", "embedded"]


def chosen() -> Kind:
    """``existing`` when both TEST_ URLs are set, ``testcontainers`` when asked, else ``embedded``."""
    if os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS"):
        return "existing"
    if os.environ.get("TEST_STACK") == "testcontainers":
        return "testcontainers"
    return "embedded"


def describe() -> str:
    """One line for the report header, the database password masked."""
    kind = chosen()
    if kind == "existing":
        return (
            f"stack: existing (TEST_DATABASE_URL={mask_url(os.environ['TEST_DATABASE_URL'])}, "
            f"TEST_KAFKA_BOOTSTRAP_SERVERS={os.environ['TEST_KAFKA_BOOTSTRAP_SERVERS']}; its tables are truncated)"
        )
    if kind == "testcontainers":
        return "stack: testcontainers (Kafka in KRaft mode + postgres:17, in Docker)"
    import devstack
    from core.errors import PlatformError

    try:
        version = f"PostgreSQL {devstack.postgres_version()}"
    except (PlatformError, OSError):
        version = "PostgreSQL (version unknown)"
    return f"stack: embedded (Tansu + {version} on free ports in a temporary folder)"
