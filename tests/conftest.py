"""Fixtures and hooks for every test: the report header says which stack the run is against."""

from __future__ import annotations

import pytest

from tests import stacks


def pytest_report_header(config: pytest.Config) -> list[str]:
    """E.g. ``stack: embedded (Tansu + PostgreSQL 18.6 on free ports in a temporary folder)``."""
    return [stacks.describe()]
