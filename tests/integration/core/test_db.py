"""Which PostgreSQL failures are transient, which mean the data was refused: decided by SQLSTATE,
checked against errors the real server raises."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2
import pytest

from core import db
from core.config import DatabaseSettings, Settings

pytestmark = pytest.mark.integration


def raised_by(settings: Settings, statement: str) -> psycopg2.Error:
    with db.connection(settings.database) as conn, conn.cursor() as cur:
        cur.execute("SET statement_timeout = 100")
        try:
            cur.execute(statement)
        except psycopg2.Error as e:
            return e
    raise AssertionError(f"{statement!r} did not fail")


@pytest.mark.parametrize(
    ("statement", "transient", "data", "timeout"),
    [
        ("SELECT pg_sleep(2)", False, False, True),
        ("SELECT '{\"n\": 1e1000000}'::jsonb", False, True, False),
        ("SELECT 1 / 0", False, True, False),
        ("CREATE TEMP TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (1)", False, True, False),
        ("SELECT * FROM no_such_table", False, False, False),
        ("SELECT pg_terminate_backend(pg_backend_pid())", True, False, False),
    ],
)
def test_errors_are_classified_by_sqlstate(
    settings: Settings, statement: str, transient: bool, data: bool, timeout: bool
) -> None:
    error = raised_by(settings, statement)
    assert db.is_transient(error) is transient
    assert db.is_data_error(error) is data
    assert db.is_statement_timeout(error) is timeout


def test_a_refused_connection_is_transient_and_described_without_secrets(settings: Settings) -> None:
    closed = DatabaseSettings(url="postgresql://de_user:s3cret@127.0.0.1:1/de_db", statement_timeout_ms=1000)
    connect: Callable[[], object] = lambda: psycopg2.connect(closed.url, connect_timeout=2)  # noqa: E731
    with pytest.raises(psycopg2.OperationalError) as caught:
        connect()
    assert db.is_transient(caught.value)
    assert "s3cret" not in db.describe_error(caught.value)


def test_the_description_names_the_sqlstate_and_never_quotes_the_data(settings: Settings) -> None:
    """PostgreSQL's own message for a data error may quote the value (``invalid input syntax for
    type uuid: "..."``): a data error is described by its SQLSTATE and name only."""
    error = raised_by(settings, "SELECT 'secret@example.org'::uuid")
    assert "secret@example.org" in str(error)
    assert db.describe_error(error) == "22P02: invalid_text_representation"
    error = raised_by(settings, "SELECT '{\"secret@example.org\": }'::jsonb")
    assert db.describe_error(error) == "22P02: invalid_text_representation"
    error = raised_by(
        settings, "CREATE TEMP TABLE t (id text PRIMARY KEY); INSERT INTO t VALUES ('secret@example.org'), ('secret@example.org')"
    )
    assert db.describe_error(error) == "23505: unique_violation (t_pkey)"
    # Other errors keep the primary message, which names objects, not data.
    assert (
        db.describe_error(raised_by(settings, "SELECT * FROM no_such_table")) == '42P01: relation "no_such_table" does not exist'
    )
