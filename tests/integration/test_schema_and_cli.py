"""Migrations, the embedded stack's idempotence, and what commands say when something is wrong."""

from __future__ import annotations

import pytest

from core import db
from core.config import Settings
from tests.helpers import query, run_command

pytestmark = pytest.mark.integration

SCHEMA_SQL = """
SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '')
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT tablename, indexname, indexdef, '', '' FROM pg_indexes WHERE schemaname = 'public'
ORDER BY 1, 2
"""


def test_applying_migrations_twice_changes_nothing(settings: Settings) -> None:
    before = query(settings, SCHEMA_SQL)
    applied_before = query(settings, "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")
    assert db.migrate(settings.database) == []
    result = run_command("core.db")
    assert result.returncode == 0 and "up to date" in result.stdout
    assert query(settings, SCHEMA_SQL) == before
    assert query(settings, "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version") == applied_before
    assert [v for (v, *_rest) in applied_before] == [p.name for p in db.migration_files()]


def test_erasure_is_allowed_by_the_schema(settings: Settings) -> None:
    """The original schema declared email NOT NULL and then set it to NULL."""
    nullable = dict(
        query(settings, "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'users_pii'")
    )
    assert nullable["email"] == nullable["full_name"] == nullable["address"] == "YES"


COMMANDS = [
    ("data_generators.generate_users", []),
    ("data_generators.generate_events", ["--count", "1"]),
    ("consumers.store_raw_events", []),
    ("consumers.streaming_metrics", []),
    ("consumers.status", []),
    ("consumers.dead_letters", []),
    ("batch.batch_metrics", []),
    ("batch.compare_batch_vs_stream", []),
    ("gdpr.process_privacy_requests", []),
    ("reports.generate_daily_report", []),
    ("reports.gdpr_audit_report", []),
    ("scheduler", []),
    ("scheduler", ["run-once", "privacy-deadlines"]),
    ("core.db", []),
]


@pytest.mark.parametrize(("module", "args"), COMMANDS)
def test_every_command_has_help(module: str, args: list[str]) -> None:
    result = run_command(module, "--help")
    assert result.returncode == 0
    assert "usage: python -m " + module in result.stdout


@pytest.mark.parametrize(("module", "args"), COMMANDS)
def test_unreachable_postgres_is_one_clear_line(module: str, args: list[str], settings: Settings) -> None:
    url = "postgresql://de_user:secret@127.0.0.1:1/de_db"
    result = run_command(module, *args, env={"DATABASE_URL": url}, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "127.0.0.1:1" in line and "make up" in line and "secret" not in line


@pytest.mark.parametrize(
    "module", ["data_generators.generate_events", "consumers.store_raw_events", "consumers.streaming_metrics"]
)
def test_unreachable_kafka_is_one_clear_line(module: str, settings: Settings) -> None:
    assert run_command("data_generators.generate_users", "--count", "2").returncode == 0
    result = run_command(module, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "error: Kafka at 127.0.0.1:1 is not reachable" in result.stderr and "make up" in result.stderr


def test_bad_day_argument_is_rejected_without_traceback(settings: Settings) -> None:
    result = run_command("batch.batch_metrics", "2026-02-30")
    assert result.returncode == 2
    assert "not a date in the form YYYY-MM-DD" in result.stderr and "Traceback" not in result.stderr


def test_bad_setting_is_named(settings: Settings) -> None:
    result = run_command("batch.batch_metrics", env={"SINK_BATCH_SIZE": "lots"})
    assert result.returncode == 2
    assert "SINK_BATCH_SIZE='lots' is not an integer" in result.stderr


@pytest.mark.parametrize("tolerance", ["abc", "-0.1", "nan"])
def test_bad_tolerance_is_one_clear_line(tolerance: str) -> None:
    result = run_command("batch.compare_batch_vs_stream", "--tolerance", tolerance)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"argument --tolerance: {tolerance!r}" in result.stderr
