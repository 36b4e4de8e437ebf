"""Settings of the live dashboard: the loopback and port 8003 by default, overrides, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import web
from core.config import DashboardSettings, load_settings
from core.errors import ConfigError


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"STACK_FILE": str(tmp_path / "absent.env"), **values}


def test_defaults_listen_on_the_loopback_on_port_8003(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).dashboard == DashboardSettings(host="127.0.0.1", port=8003)


def test_the_environment_sets_them(tmp_path: Path) -> None:
    values = env(tmp_path, DASHBOARD_HOST="0.0.0.0", DASHBOARD_PORT="9003")  # noqa: S104
    assert load_settings(values).dashboard == DashboardSettings(host="0.0.0.0", port=9003)  # noqa: S104


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DASHBOARD_PORT", "70000", "DASHBOARD_PORT=70000 is not a port number"),
        ("DASHBOARD_PORT", "http", "DASHBOARD_PORT='http' is not an integer"),
        ("DASHBOARD_PORT", "0", "DASHBOARD_PORT=0 must be at least 1"),
        ("DASHBOARD_HOST", " ", "DASHBOARD_HOST is empty"),
    ],
)
def test_values_that_cannot_work_are_refused_naming_the_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(env(tmp_path, **{variable: value}))


def test_the_allowed_hosts_are_the_loopbacks_names_by_default_and_may_be_set(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).dashboard.allowed_hosts == ("localhost", "127.0.0.1", "[::1]")
    values = env(tmp_path, DASHBOARD_ALLOWED_HOSTS=" Dash.Example.com , [::1]:8003,")
    assert load_settings(values).dashboard.allowed_hosts == ("dash.example.com", "[::1]:8003")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(" , ", "DASHBOARD_ALLOWED_HOSTS is empty"), ("::1", "'::1' is no host name"), ("a b", "'a b' is no host name")],
)
def test_allowed_hosts_that_are_none_are_refused(tmp_path: Path, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(env(tmp_path, DASHBOARD_ALLOWED_HOSTS=value))


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        ("localhost", True),
        ("LOCALHOST:8003", True),
        ("[::1]:1", True),
        ("dash.example.com:8003", True),
        ("dash.example.com:8004", False),
        ("evil.example", False),
        ("localhost.evil.example", False),
        ("evil@localhost", False),
        ("", False),
        (None, False),
    ],
)
def test_a_host_header_is_allowed_by_name_and_by_port_when_one_is_listed(header: str | None, allowed: bool) -> None:
    assert web.host_allowed(header, ("localhost", "[::1]", "dash.example.com:8003")) is allowed
    assert web.host_allowed(header, ("*",)) is True
