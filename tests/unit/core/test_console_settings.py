"""Settings of the DPO console: defaults, overrides, refusals of values that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConsoleSettings, load_settings
from core.errors import ConfigError


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"STACK_FILE": str(tmp_path / "absent.env"), **values}


def test_defaults_listen_on_the_loopback_with_working_day_sessions(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).console == ConsoleSettings(
        host="127.0.0.1", port=8002, session_hours=8, secure_cookies=False
    )


def test_the_environment_sets_them(tmp_path: Path) -> None:
    values = env(tmp_path, CONSOLE_HOST="0.0.0.0", CONSOLE_PORT="9002", CONSOLE_SESSION_HOURS="2", CONSOLE_SECURE_COOKIES="TRUE")  # noqa: S104
    assert load_settings(values).console == ConsoleSettings(host="0.0.0.0", port=9002, session_hours=2, secure_cookies=True)  # noqa: S104


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CONSOLE_PORT", "70000", "not a port number"),
        ("CONSOLE_PORT", "http", "not an integer"),
        ("CONSOLE_SESSION_HOURS", "0", "at least 1"),
        ("CONSOLE_SESSION_HOURS", "1000", "a week at most"),
        ("CONSOLE_SECURE_COOKIES", "yes", "not true or false"),
        ("CONSOLE_HOST", " ", "CONSOLE_HOST is empty"),
    ],
)
def test_values_that_cannot_work_are_refused_naming_the_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(env(tmp_path, **{variable: value}))
