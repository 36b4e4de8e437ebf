"""The test report's header says which stack the run is against, without its password."""

from __future__ import annotations

import pytest

from tests import stacks


def test_an_existing_stack_is_named_with_its_password_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://ci:s3cret@db.ci:5432/analytics_test")
    monkeypatch.setenv("TEST_KAFKA_BOOTSTRAP_SERVERS", "kafka.ci:9092")
    line = stacks.describe()
    assert line.startswith("stack: existing (TEST_DATABASE_URL=postgresql://ci:***@db.ci:5432/analytics_test")
    assert "kafka.ci:9092" in line and "s3cret" not in line


def test_testcontainers_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("TEST_STACK", "testcontainers")
    assert stacks.describe().startswith("stack: testcontainers")


def test_the_embedded_stack_by_default_with_its_postgresql_version(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEST_DATABASE_URL", "TEST_KAFKA_BOOTSTRAP_SERVERS", "TEST_STACK"):
        monkeypatch.delenv(name, raising=False)
    line = stacks.describe()
    assert line.startswith("stack: embedded (Tansu + PostgreSQL 1") and "temporary folder" in line
