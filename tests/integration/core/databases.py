"""A database of its own on the test cluster, migrated up to a given migration: for tests that
upgrade a populated database in place (created by the embedded stack's superuser: the
application role may not create databases)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from psycopg2 import sql

import devstack
from core import db
from core.config import Settings


def stack_data_dir() -> Path:
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("needs the embedded stack, whose superuser can create a database")
    return Path(data_dir)


@contextmanager
def database_before(settings: Settings, tmp_path: Path, first_not_applied: str) -> Iterator[Settings]:
    """Settings for a new database with the migrations before ``first_not_applied`` (a prefix
    such as ``"021"``) applied; dropped afterwards."""
    url = urlsplit(settings.database.url)
    name = f"upgrade_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(devstack.superuser_url(stack_data_dir(), url.port or 5432))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(url.username or "")))
    database = settings.database.model_copy(update={"url": urlunsplit(url._replace(path=f"/{name}"))})
    old = settings.model_copy(update={"database": database})
    before = tmp_path / f"sql-before-{first_not_applied}"
    before.mkdir()
    for path in db.migration_files():
        if path.name < first_not_applied:
            shutil.copy(path, before / path.name)
    try:
        db.migrate(old.database, before)
        yield old
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
