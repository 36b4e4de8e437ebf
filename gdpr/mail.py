"""Mail to data subjects over SMTP: the verification code of a request, and its completion notice.

Messages carry what the person needs and nothing more: a code, a request number, a status. An
access export is never mailed, nor any link that would hand it to whoever holds the mail: the
notice says to download it with the secret the person was given when filing the request.

Internationalised addresses (``josé@exämple.de``) are mailboxes too: messages to them go out
with SMTPUTF8 (RFC 6531), which smtplib asks for by itself when an address is not ASCII; a
server without it refuses them (MailRefused). Nothing here logs an address, a code or a secret.
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from core.config import MailSettings, PrivacyApiSettings, Settings
from core.errors import InvalidInput, ServiceUnavailable

logger = logging.getLogger(__name__)

START_HINT = "start it with `make up` (embedded stack, .local/mail/) or set SMTP_HOST and SMTP_PORT"
# What a person is told a request asks for, by request type.
ASKS = {
    "erasure": "erase your personal data",
    "access": "send you a copy of your personal data",
    "rectification": "correct your personal data",
    "restriction": "restrict the processing of your personal data",
    "objection": "stop processing your personal data for analytics",
}
# How a request's end is told, by status.
OUTCOMES = {
    "completed": "completed",
    "not_found": "closed: we hold no personal data under this address",
    "rejected": "rejected: it could not be acted on",
    "denied": "refused by our data protection officer",
    "on_hold": "on hold: a legal obligation requires us to keep the data for now",
    "expired": "expired: its code was not confirmed in time",
}


class MailRefused(InvalidInput):
    """The mail server will not take a message for this address; sending it again will not help."""


def _message(settings: MailSettings, to: str, subject: str, text: str) -> EmailMessage:
    # SMTPUTF8 keeps an internationalised address as it is in the headers (it cannot be encoded);
    # smtplib then announces SMTPUTF8 to the server. ASCII addresses get the plain SMTP policy.
    policy = email.policy.SMTP if to.isascii() and settings.sender.isascii() else email.policy.SMTPUTF8
    message = EmailMessage(policy=policy)
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=settings.sender.rsplit("@", 1)[1])
    # RFC 3834: an automatic message; out-of-office replies are not sent back to it.
    message["Auto-Submitted"] = "auto-generated"
    # Plain 7-bit text when it can be: the .eml files of the embedded stack read as they are.
    message.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    return message


def verification_message(settings: Settings, to: str, code: str, request_type: str) -> EmailMessage:
    """The mail carrying a request's one-time code (to the address the request names)."""
    minutes = settings.privacy_api.code_ttl_s // 60
    text = (
        f"Somebody, hopefully you, asked us to {ASKS[request_type]} ({request_type} request).\n\n"
        f"Your verification code is: {code}\n\n"
        f"It is valid for {minutes} minutes and {settings.privacy_api.max_attempts} tries. Nothing happens"
        " unless the code is entered: if you did not ask for this, ignore this message.\n"
    )
    return _message(settings.mail, to, "Confirm your privacy request", text)


def completion_message(
    settings: Settings,
    to: str,
    *,
    request_id: int,
    request_type: str,
    status: str,
    export_expires_at: datetime | None = None,
) -> EmailMessage:
    """The notice that request ``request_id`` is ``status``. For an access export it says how to
    download it: with the request's secret, never a link that works alone."""
    text = f"Your {request_type} request {request_id} is {OUTCOMES.get(status, status)}.\n"
    if request_type == "access" and status == "completed" and export_expires_at is not None:
        text += (
            "\nYour data is ready to download, once, with the secret you were given when you filed the request:\n\n"
            f"    GET {export_url(settings.privacy_api, request_id)}\n"
            "    Authorization: Bearer <your secret>\n\n"
            f"It is deleted on {export_expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, downloaded or not.\n"
        )
    text += f"\nThe request's status: GET {status_url(settings.privacy_api, request_id)} with the same secret.\n"
    return _message(settings.mail, to, f"Your privacy request {request_id}: {status.replace('_', ' ')}", text)


def status_url(settings: PrivacyApiSettings, request_id: int) -> str:
    return f"{settings.public_url}/v1/privacy-requests/{request_id}"


def export_url(settings: PrivacyApiSettings, request_id: int) -> str:
    return f"{status_url(settings, request_id)}/export"


def send(settings: MailSettings, message: EmailMessage) -> None:
    """Hand ``message`` to the SMTP server (STARTTLS and login when configured); blocking, at most
    SMTP_TIMEOUT_S per step. ServiceUnavailable (one line, naming the server) when it cannot be
    reached or fails; MailRefused when it refuses the recipient."""
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, settings.password.get_secret_value())
            smtp.send_message(message)
    # The exceptions' texts are never passed on: a refusal quotes the recipients.
    except smtplib.SMTPRecipientsRefused as e:
        raise MailRefused("the mail server refused this address: check it") from e
    except smtplib.SMTPNotSupportedError as e:
        raise MailRefused(
            f"the mail server at {settings.host}:{settings.port} cannot deliver to internationalised addresses (no SMTPUTF8)"
        ) from e
    except smtplib.SMTPAuthenticationError as e:
        raise ServiceUnavailable(
            f"the SMTP server at {settings.host}:{settings.port} refused the login (code {e.smtp_code}):"
            " check SMTP_USER and SMTP_PASSWORD"
        ) from e
    except (smtplib.SMTPException, OSError) as e:
        raise ServiceUnavailable(f"the SMTP server at {settings.host}:{settings.port} {_failure(e)}: {START_HINT}") from e


def _failure(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return f"answered {error.smtp_code}"
    if isinstance(error, TimeoutError):
        return "did not answer in time"
    if isinstance(error, OSError) and error.strerror:
        return f"is not reachable ({error.strerror})"
    return f"failed ({type(error).__name__})"


def check(settings: MailSettings) -> None:
    """Connect and say NOOP (a readiness probe); ServiceUnavailable when the server does not answer."""
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
            code, _text = smtp.noop()
    except (smtplib.SMTPException, OSError) as e:
        raise ServiceUnavailable(f"the SMTP server at {settings.host}:{settings.port} {_failure(e)}: {START_HINT}") from e
    if code != 250:
        raise ServiceUnavailable(f"the SMTP server at {settings.host}:{settings.port} answered NOOP with {code}")


def notify_completion(
    settings: Settings,
    to: str,
    *,
    request_id: int,
    request_type: str,
    status: str,
    export_expires_at: datetime | None = None,
) -> None:
    """Mail the requester that request ``request_id`` is ``status`` (for the processor, before it
    forgets the address). Raises as ``send`` does."""
    message = completion_message(
        settings, to, request_id=request_id, request_type=request_type, status=status, export_expires_at=export_expires_at
    )
    send(settings.mail, message)


def tell_decision(
    settings: Settings,
    to: str,
    *,
    request_id: int,
    request_type: str,
    decision: str,
    reason: str,
    due_at: datetime | None = None,
) -> None:
    """Mail the requester a DPO's decision on request ``request_id`` with its reason: ``denied``
    (Art. 12(4): and that they may complain to a supervisory authority) or ``extended`` (Art.
    12(3): the new deadline). Raises as ``send`` does."""
    if decision == "denied":
        text = (
            f"Your {request_type} request {request_id} was refused by our data protection officer.\n\n"
            f"The reason: {reason}\n\n"
            "You may lodge a complaint with a supervisory authority and seek a judicial remedy (GDPR Art. 12(4)).\n"
        )
    else:
        when = "" if due_at is None else f" We will answer by {due_at.astimezone(UTC):%Y-%m-%d}."
        text = (
            f"We need more time for your {request_type} request {request_id}.{when}\n\n"
            f"The reason: {reason}\n\n"
            "The deadline may be extended by up to two months where requests are complex or numerous (GDPR Art. 12(3)).\n"
        )
    text += f"\nThe request's status: GET {status_url(settings.privacy_api, request_id)} with your secret.\n"
    send(settings.mail, _message(settings.mail, to, f"Your privacy request {request_id}: {decision}", text))


def tell_decision_or_log(
    settings: Settings,
    to: str,
    *,
    request_id: int,
    request_type: str,
    decision: str,
    reason: str,
    due_at: datetime | None = None,
) -> bool:
    """``tell_decision``; True when the mail went. A mail that cannot go is logged by request id
    (never the address) and False: the decision stands, and the status shows it."""
    try:
        tell_decision(
            settings, to, request_id=request_id, request_type=request_type, decision=decision, reason=reason, due_at=due_at
        )
    except (MailRefused, ServiceUnavailable) as e:
        logger.warning("privacy request %d: the requester was not mailed the decision: %s", request_id, e)
        return False
    return True
