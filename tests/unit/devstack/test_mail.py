"""The embedded stack's mail server writes each message whole, as a mailbox would show it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import stat
from pathlib import Path

from aiosmtpd.smtp import Envelope

from devstack.mail import Mailbox


def envelope(content: bytes, *rcpt: str) -> Envelope:
    env = Envelope()
    env.mail_from = "privacy@localhost"
    env.rcpt_tos = list(rcpt)
    env.original_content = content
    return env


def test_each_message_is_one_private_eml_file_naming_its_envelope(tmp_path: Path) -> None:
    content = "To: josé@exämple.de\r\nSubject: Hi\r\n\r\nYour verification code is: 01234567\r\n".encode()
    answer = asyncio.run(Mailbox(tmp_path).handle_DATA(None, None, envelope(content, "josé@exämple.de")))  # type: ignore[arg-type]

    assert answer.startswith("250")
    [path] = tmp_path.iterdir()
    assert path.suffix == ".eml" and not path.name.startswith(".")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["X-Envelope-To"] == "<josé@exämple.de>" and message["X-Envelope-From"] == "<privacy@localhost>"
    assert "01234567" in message.get_content()


def test_messages_never_overwrite_each_other(tmp_path: Path) -> None:
    box = Mailbox(tmp_path)
    paths = {box.write(envelope(b"Subject: n\r\n\r\n.", "a@example.org")) for _ in range(50)}
    assert len(paths) == 50 == len(list(tmp_path.glob("*.eml")))


def test_a_message_that_cannot_be_stored_is_refused_for_the_client_to_retry(tmp_path: Path) -> None:
    answer = asyncio.run(Mailbox(tmp_path / "missing").handle_DATA(None, None, envelope(b"x", "a@example.org")))  # type: ignore[arg-type]
    assert answer.startswith("451")
