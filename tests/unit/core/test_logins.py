"""The component logins, without a server: one name in the code, the configuration and the
migrations that create them (sql/015, sql/018, sql/022, sql/024, sql/039) alike; passwords from DB_PASSWORD_* (the
environment winning), never shown; the embedded stack's own random ones, kept private."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from core import db
from core.config import DEFAULTS, LOGIN_PASSWORD_VARIABLES, load_database_settings, load_settings
from core.errors import ConfigError
from devstack.stack import LOGINS_FILE, login_passwords

MIGRATIONS = [
    db.SQL_DIR / "015_component_logins.sql",
    db.SQL_DIR / "018_retention.sql",
    db.SQL_DIR / "022_scheduler.sql",
    db.SQL_DIR / "024_dashboard.sql",
    db.SQL_DIR / "039_analytics_scores.sql",
    db.SQL_DIR / "045_analyst_accounts.sql",
]


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"STACK_FILE": str(tmp_path / "absent.env"), **values}


def test_every_group_role_has_one_login_created_by_the_migration_with_a_password_variable() -> None:
    text = "".join(path.read_text(encoding="utf-8") for path in MIGRATIONS)
    # The logins of sql/015 and sql/018 are made in a loop over pairs; from sql/022 on, by
    # platform_component_login(login, group).
    created = dict(re.findall(r"\['(login_\w+)', '(\w+)'\]", text))
    created.update(re.findall(r"platform_component_login\('(login_\w+)', '(\w+)'\)", text))
    assert created == {login: role for role, login in db.LOGINS.items()}
    assert set(LOGIN_PASSWORD_VARIABLES) == set(db.LOGINS.values())
    assert all(variable in DEFAULTS for variable in LOGIN_PASSWORD_VARIABLES.values())
    assert len(set(LOGIN_PASSWORD_VARIABLES.values())) == len(LOGIN_PASSWORD_VARIABLES)
    # The one table names every role constant of core.db, and the settings read exactly its variables.
    roles = {value for name, value in vars(db).items() if name.endswith("_ROLE") and isinstance(value, str)}
    assert roles == set(db.LOGINS)
    assert {v for v in DEFAULTS if v.startswith("DB_PASSWORD_")} == set(LOGIN_PASSWORD_VARIABLES.values())


def test_login_passwords_come_from_their_variables_and_the_environment_wins(tmp_path: Path) -> None:
    stack = tmp_path / "stack.env"
    stack.write_text("DB_PASSWORD_GDPR=from-the-stack\nDB_PASSWORD_REPORTS=from-the-stack\n")
    database = load_settings(env(tmp_path, STACK_FILE=str(stack), DB_PASSWORD_GDPR="from-the-env")).database
    assert database.login_password("login_gdpr") == "from-the-env"
    assert database.login_password("login_reports") == "from-the-stack"
    assert database.login_password("login_batch") == DEFAULTS["DB_PASSWORD_BATCH"]


def test_passwords_given_to_the_narrow_loader_win(tmp_path: Path) -> None:
    database = load_database_settings("postgresql://h/d", env(tmp_path), passwords={"DB_PASSWORD_AUDITOR": "chosen"})
    assert database.login_password("login_auditor") == "chosen"


def test_an_empty_password_is_refused_where_it_is_used_naming_the_variable(tmp_path: Path) -> None:
    database = load_settings(env(tmp_path, DB_PASSWORD_CONSOLE="")).database
    with pytest.raises(ConfigError, match="login 'login_console': set DB_PASSWORD_CONSOLE"):
        db.connect(database, role=db.CONSOLE_ROLE)


def test_login_passwords_are_never_shown(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path, DB_PASSWORD_GDPR="very-secret-1", DB_PASSWORD_MONITOR="very-secret-2"))
    for text in (settings.describe(), repr(settings), repr(settings.database), str(settings)):
        assert "very-secret" not in text


def test_a_role_without_a_login_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no login connects as database role 'nobody'"):
        db.login_of("nobody")


def test_the_embedded_stack_chooses_random_passwords_once_and_keeps_them_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in LOGIN_PASSWORD_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    first = login_passwords(tmp_path)
    assert set(first) == set(LOGIN_PASSWORD_VARIABLES.values())
    assert len(set(first.values())) == len(first) and not set(first.values()) & set(DEFAULTS.values())
    assert stat.S_IMODE((tmp_path / LOGINS_FILE).stat().st_mode) == 0o600
    assert login_passwords(tmp_path) == first  # a later `make up` keeps them

    monkeypatch.setenv("DB_PASSWORD_GDPR", "set-by-the-operator")
    assert login_passwords(tmp_path) == {**first, "DB_PASSWORD_GDPR": "set-by-the-operator"}
