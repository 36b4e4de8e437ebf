"""The embedded stack's SMTP server: every message it receives is written to a folder, never sent on.

``python -m devstack.mail --dir D [--host H] [--port P]`` (``make up`` starts it beside the broker
and writes to ``.local/mail/``; docker-compose runs it as the ``mail`` service). Each message
becomes ``D/<UTC time>-<uuid>.eml``: the bytes the client sent, after two headers naming the
envelope (``X-Envelope-From``, ``X-Envelope-To``), so a person or a test reads what a mailbox
would have received. A file appears whole or not at all (written aside, then renamed).
Internationalised addresses are accepted (SMTPUTF8). aiosmtpd does the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

from core.cli import one_line_errors, setup_logging
from core.config import log_level
from core.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 1025
# A verification mail is a few kilobytes; anything far larger is not ours.
MAX_MESSAGE_BYTES = 10 << 20


class Mailbox:
    """An aiosmtpd handler that writes each message to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, envelope: Envelope) -> Path:
        """Write one message as ``<UTC time>-<uuid>.eml`` (atomically); return its path."""
        head = f"X-Envelope-From: <{envelope.mail_from or ''}>\r\n"
        head += "".join(f"X-Envelope-To: <{rcpt}>\r\n" for rcpt in envelope.rcpt_tos)
        body = envelope.original_content or b""
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex}.eml"
        partial = self.directory / f".{name}.partial"
        # The mail holds codes and personal data: readable by the owner only.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(head.encode("utf-8") + body)
        path = self.directory / name
        partial.replace(path)
        return path

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        try:
            path = await asyncio.to_thread(self.write, envelope)
        except OSError as e:
            logger.error("cannot write a message to %s: %s", self.directory, e.strerror)
            return "451 Requested action aborted: cannot store the message"
        logger.info("message for %d recipients written to %s", len(envelope.rcpt_tos), path.name)
        return "250 Message accepted for delivery"


async def serve(directory: Path, host: str, port: int) -> None:
    """Accept mail on ``host:port`` until SIGINT or SIGTERM."""
    directory.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    handler = Mailbox(directory)
    try:
        server = await loop.create_server(
            lambda: SMTP(handler, enable_SMTPUTF8=True, data_size_limit=MAX_MESSAGE_BYTES, loop=loop), host, port
        )
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}): stop what uses it, or choose --port") from e
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    bound = server.sockets[0].getsockname()
    logger.info("mail server listening on %s:%d, writing each message to %s", bound[0], bound[1], directory)
    async with server:
        await stop.wait()
    logger.info("mail server stopped")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m devstack.mail``."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.mail",
        description="A local SMTP server for development and tests: every message is written to DIR as a .eml "
        "file, nothing is delivered. `make up` runs it for the embedded stack (mail in .local/mail/).",
    )
    parser.add_argument("--dir", type=Path, required=True, help="where the .eml files are written")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port, 0 for any free one (default: {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a port number")
    with one_line_errors():
        setup_logging(log_level())
        # aiosmtpd logs every command at INFO, the recipients' addresses with them.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        asyncio.run(serve(args.dir.resolve(), args.host, args.port))


if __name__ == "__main__":
    main()
