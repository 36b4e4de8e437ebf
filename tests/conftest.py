"""Fixtures and hooks for every test: the report header says which stack the run is against."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import stacks

# The design document's own test runs against whatever stack is running (its ``config`` reads
# the environment and .local/stack.env at import). The suite never touches a developer's stack:
# it runs that test in a child pytest pointed at the suite's own stack, and collects it here
# only when it is named on the command line (``pytest tests/test_gdpr.py``).
DESIGN_TEST = Path(__file__).parent / "test_gdpr.py"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path != DESIGN_TEST:
        return None
    named = {Path(str(arg).split("::")[0]).resolve() for arg in config.args}
    return DESIGN_TEST not in named or None


def pytest_report_header(config: pytest.Config) -> list[str]:
    """E.g. ``stack: embedded (Tansu + PostgreSQL 18.6 on free ports in a temporary folder)``."""
    return [stacks.describe()]


def pytest_configure(config: pytest.Config) -> None:
    """An existing stack is one database for every worker, and every test empties its tables:
    several workers (pytest-xdist's -n, make test's TEST_WORKERS) would empty each other's."""
    workers = getattr(config.option, "numprocesses", None)
    if stacks.chosen() == "existing" and workers not in (None, 0):
        raise pytest.UsageError("an existing stack (TEST_DATABASE_URL) is shared by every worker: run it in one (TEST_WORKERS=0)")
