"""Mail over real SMTP: ``python -m devstack.mail`` (the embedded stack's server) receives what
``gdpr.mail`` sends, internationalised addresses included; a server that cannot take a message,
or none at all, is one clear error."""

from __future__ import annotations

import email
import email.policy
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

import devstack
from core.config import MailSettings, load_settings
from core.errors import ServiceUnavailable
from gdpr import mail
from tests.helpers import PROJECT_ROOT, run_command, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, int]]:
    """``python -m devstack.mail`` on a free port, writing to a temporary folder."""
    port, directory, log = devstack.free_port(), tmp_path / "mail", tmp_path / "mail.log"
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.mail", "--dir", str(directory), "--port", str(port)],
            cwd=PROJECT_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
    wait_until(lambda: "listening" in log.read_text(), timeout=30, what="the mail server")
    try:
        yield process, directory, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def settings_for(port: int) -> Any:
    base = load_settings({"STACK_FILE": "/nonexistent", "GDPR_HMAC_KEY": "test"})
    return base.model_copy(update={"mail": MailSettings(host=devstack.HOST, port=port, timeout_s=5)})


def test_the_mail_server_writes_what_is_sent_to_ascii_and_internationalised_addresses(
    server: tuple[subprocess.Popen[str], Path, int], tmp_path: Path
) -> None:
    process, directory, port = server
    settings = settings_for(port)

    for to in ("jane@example.org", "josé@exämple.de", "用户@例子.广告"):
        mail.send(settings.mail, mail.verification_message(settings, to, "01234567", "erasure"))

    received = {}
    for path in directory.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        received[message["To"]] = message
    assert set(received) == {"jane@example.org", "josé@exämple.de", "用户@例子.广告"}
    assert "01234567" in received["用户@例子.广告"].get_body().get_content()  # type: ignore[union-attr]
    assert not list(directory.glob(".*"))  # no partial file left behind
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    log = (tmp_path / "mail.log").read_text()
    assert "mail server stopped" in log and "jane@example.org" not in log and "josé" not in log


class _Refuses:
    async def handle_RCPT(self, _server: SMTP, _session: Session, _envelope: Envelope, _address: str, _options: list[str]) -> str:
        return "550 No such user here"


@pytest.fixture
def plain_server() -> Iterator[int]:
    """An SMTP server without SMTPUTF8 that refuses every recipient."""
    port = devstack.free_port()
    controller = Controller(_Refuses(), hostname=devstack.HOST, port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_a_server_that_refuses_the_address_or_cannot_carry_it_is_a_refusal(plain_server: int) -> None:
    settings = settings_for(plain_server)
    with pytest.raises(mail.MailRefused, match="refused this address") as refused:
        mail.send(settings.mail, mail.verification_message(settings, "jane@example.org", "01234567", "erasure"))
    assert "jane" not in str(refused.value)
    with pytest.raises(mail.MailRefused, match="SMTPUTF8"):
        mail.send(settings.mail, mail.verification_message(settings, "josé@exämple.de", "01234567", "erasure"))


def test_no_server_is_one_line_naming_it_and_how_to_start_it() -> None:
    with socket.socket() as closed:
        closed.bind((devstack.HOST, 0))
        port = closed.getsockname()[1]
        settings = settings_for(port)
        with pytest.raises(ServiceUnavailable) as caught:
            mail.send(settings.mail, mail.verification_message(settings, "jane@example.org", "01234567", "erasure"))
        with pytest.raises(ServiceUnavailable):
            mail.check(settings.mail)
    message = str(caught.value)
    assert f"{devstack.HOST}:{port}" in message and "make up" in message and "SMTP_HOST" in message
    assert "jane" not in message and "\n" not in message


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((devstack.HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_command("devstack.mail", "--dir", str(tmp_path), "--port", str(port), timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
