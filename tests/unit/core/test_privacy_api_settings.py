"""Settings of the privacy API and of outgoing mail: defaults, overrides, refusals of unsafe values."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_settings
from core.errors import ConfigError


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"STACK_FILE": str(tmp_path / "absent.env"), "GDPR_HMAC_KEY": "unit-test-secret", **values}


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path))
    api, mail = settings.privacy_api, settings.mail
    assert (api.host, api.port, api.public_url) == ("127.0.0.1", 8001, "http://localhost:8001")
    assert (api.code_ttl_s, api.max_attempts, api.requests_per_address_per_hour) == (900, 5, 3)
    assert (mail.host, mail.port, mail.sender, mail.user, mail.starttls) == ("localhost", 1025, "privacy@localhost", "", False)


def test_the_stack_file_names_its_mail_server_and_the_environment_wins(tmp_path: Path) -> None:
    stack = tmp_path / "stack.env"
    stack.write_text("SMTP_HOST=127.0.0.1\nSMTP_PORT=2525\n")
    values = {**env(tmp_path), "STACK_FILE": str(stack)}
    assert (load_settings(values).mail.host, load_settings(values).mail.port) == ("127.0.0.1", 2525)
    assert load_settings({**values, "SMTP_PORT": "587"}).mail.port == 587


def test_a_login_over_starttls_and_its_password_never_shown(tmp_path: Path) -> None:
    settings = load_settings(
        env(tmp_path, SMTP_HOST="smtp.example.com", SMTP_USER="api", SMTP_PASSWORD="hunter2", SMTP_STARTTLS="TRUE")
    )
    assert settings.mail.starttls and settings.mail.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert settings.mail.display == "smtp://api@smtp.example.com:1025 (STARTTLS)"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"PRIVACY_API_PORT": "70000"}, "PRIVACY_API_PORT=70000 is not a port number"),
        ({"SMTP_PORT": "x"}, "SMTP_PORT='x' is not an integer"),
        ({"VERIFICATION_CODE_TTL_S": "30"}, "VERIFICATION_CODE_TTL_S=30 must be at least 60"),
        ({"VERIFICATION_MAX_ATTEMPTS": "0"}, "VERIFICATION_MAX_ATTEMPTS=0 must be at least 1"),
        ({"PRIVACY_API_REQUESTS_PER_ADDRESS_PER_HOUR": "0"}, "must be at least 1"),
        ({"PRIVACY_API_PUBLIC_URL": "ftp://x"}, "PRIVACY_API_PUBLIC_URL='ftp://x' is not an http(s) URL"),
        ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS='maybe' is not true or false"),
        ({"SMTP_FROM": "Privacy <privacy@example.com>"}, "SMTP_FROM"),
        ({"SMTP_FROM": "nobody"}, "SMTP_FROM"),
        ({"SMTP_USER": "api"}, "set both SMTP_USER and SMTP_PASSWORD"),
        ({"SMTP_HOST": "smtp.example.com", "SMTP_USER": "a", "SMTP_PASSWORD": "hunter2"}, "SMTP_STARTTLS is off"),
    ],
)
def test_unsafe_or_malformed_values_name_the_variable(tmp_path: Path, values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env(tmp_path, **values))
    assert message in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_login_in_clear_is_allowed_to_the_machine_itself(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path, SMTP_HOST="localhost", SMTP_USER="a", SMTP_PASSWORD="p"))
    assert settings.mail.user == "a" and not settings.mail.starttls
