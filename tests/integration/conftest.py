"""Fixtures for integration tests: a real Kafka-protocol broker and a real PostgreSQL.

Which stack, in this order:
- ``TEST_DATABASE_URL`` and ``TEST_KAFKA_BOOTSTRAP_SERVERS`` set: that existing stack (its tables
  are truncated: point it at a disposable database);
- ``TEST_STACK=testcontainers`` (needs Docker): Kafka and postgres:17 containers;
- otherwise an isolated embedded stack (Tansu + PostgreSQL) on free ports in a temporary folder,
  never the user's ``.local/``; ``STACK_FILE`` points at that stack's own file.
Every test gets a fresh topic and fresh consumer group names; tables are truncated before it.
The session sets a test ``GDPR_HMAC_KEY`` (and ``AUDIT_SEAL_KEY``) whatever the stack: tests point commands at other URLs
(an unreachable one, say), where the public development key is refused.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from psycopg2 import sql

import devstack
from core import db, kafka
from core.config import Settings, load_settings
from tests import stacks

# Not the public development default, which is refused off the embedded stack.
TEST_HMAC_KEY = "test-only-" + uuid.uuid4().hex
TEST_SEAL_KEY = "test-only-seal-" + uuid.uuid4().hex


def _existing_stack(nowhere: Path) -> Generator[dict[str, str], None, None]:
    yield {
        "DATABASE_URL": os.environ["TEST_DATABASE_URL"],
        "KAFKA_BOOTSTRAP_SERVERS": os.environ["TEST_KAFKA_BOOTSTRAP_SERVERS"],
        "STACK_FILE": str(nowhere),
    }


def _testcontainers_stack(nowhere: Path) -> Generator[dict[str, str], None, None]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        PostgresContainer("postgres:17", username="de_user", password="de_password", dbname="de_db", driver=None) as pg,
        KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as broker,
    ):
        yield {
            "DATABASE_URL": pg.get_connection_url(),
            "KAFKA_BOOTSTRAP_SERVERS": broker.get_bootstrap_server(),
            "STACK_FILE": str(nowhere),
        }


def _embedded_stack(base: Path) -> Generator[dict[str, str], None, None]:
    info = devstack.up(
        base, pg_port=devstack.free_port(), kafka_port=devstack.free_port(), smtp_port=devstack.free_port(), fast=True
    )
    try:
        # Its own stack file, as `make up` writes .local/stack.env: never the developer's.
        yield {**info.env(), "STACK_FILE": str(info.stack_file), "TEST_STACK_DATA_DIR": str(info.data_dir)}
    finally:
        devstack.down(base)


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start (or find) the stack once per session and point every module at it."""
    # Never read the developer's .local/stack.env, whatever the stack.
    nowhere = tmp_path_factory.mktemp("nostack") / "stack.env"
    kind = stacks.chosen()
    if kind == "existing":
        source = _existing_stack(nowhere)
    elif kind == "testcontainers":
        source = _testcontainers_stack(nowhere)
    else:
        source = _embedded_stack(tmp_path_factory.mktemp("stack"))
    saved = dict(os.environ)
    try:
        env = next(source)
        os.environ.update(env)
        os.environ["GDPR_HMAC_KEY"] = TEST_HMAC_KEY
        os.environ["AUDIT_SEAL_KEY"] = TEST_SEAL_KEY
        os.environ["LOG_LEVEL"] = "INFO"
        # Tests run many services side by side: none takes its default metrics port; the tests
        # of the metrics give theirs a free one (--metrics-port).
        os.environ["METRICS_ENABLED"] = "false"
        db.migrate(load_settings().database)
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)
        source.close()


@pytest.fixture
def settings(stack_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for one test: a fresh topic, reports in a temporary folder, empty tables."""
    topic = f"user_events_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("EVENTS_TOPIC", topic)
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "reports"))
    # Small, quick batches so a test sees several transactions per consumer.
    monkeypatch.setenv("SINK_BATCH_SIZE", "500")
    monkeypatch.setenv("SINK_BATCH_SECONDS", "0.2")
    current = load_settings()
    with db.connection(current.database) as conn, conn, conn.cursor() as cur:
        # Every table but the migrations' record, so a table added by a migration is reset too.
        # The coordination locks' grants and rows (sql/030) are schema, not data.
        cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
            " AND tablename NOT LIKE 'platform\\_lock%'"
        )
        tables = sql.SQL(", ").join(sql.Identifier(name) for (name,) in cur.fetchall())
        # The append-only tables (audit trail, consent ledger) refuse TRUNCATE, and the audit
        # trail's owner has no TRUNCATE privilege either (sql/015); only the owner can lift both,
        # here, for a test reset, inside this one transaction.
        append_only = (
            "privacy_audit_log",
            "consent_ledger",
            "privacy_audit_seals",
            "privacy_ledger",
            "privacy_ledger_seals",
            "privacy_budget_changes",
        )
        cur.execute("GRANT TRUNCATE ON privacy_audit_log TO CURRENT_USER")
        for table in append_only:
            cur.execute(
                sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(sql.Identifier(table), sql.Identifier(f"{table}_no_truncate"))
            )
        cur.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(tables))
        for table in append_only:
            cur.execute(
                sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(sql.Identifier(table), sql.Identifier(f"{table}_no_truncate"))
            )
        cur.execute("REVOKE TRUNCATE ON privacy_audit_log FROM CURRENT_USER")
    kafka.ensure_topic(current.kafka, topic, partitions=3)
    yield current


@pytest.fixture
def group() -> str:
    """A consumer-group suffix unique to the test."""
    return uuid.uuid4().hex[:8]
