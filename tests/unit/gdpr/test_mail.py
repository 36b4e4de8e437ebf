"""The mails to data subjects: what they say, and what they never carry."""

from __future__ import annotations

import email.policy
from datetime import UTC, datetime
from pathlib import Path

from core.config import DatabaseSettings, KafkaSettings, MailSettings, PrivacyApiSettings, Settings, SinkSettings
from gdpr import mail

SETTINGS = Settings(
    database=DatabaseSettings(url="postgresql://u:p@localhost/db", statement_timeout_ms=1000),
    kafka=KafkaSettings(bootstrap_servers="localhost:9092", topic="t", partitions=1),
    sink=SinkSettings(batch_size=1, batch_seconds=1.0),
    reports_dir=Path("reports"),
    log_level="INFO",
    privacy_api=PrivacyApiSettings(public_url="https://privacy.example.com", code_ttl_s=600, max_attempts=4),
    mail=MailSettings(sender="privacy@shop.example", user="privacy", password="smtp-secret"),
)


def test_the_verification_mail_carries_the_code_and_nothing_to_click() -> None:
    message = mail.verification_message(SETTINGS, "jane@example.org", "01234567", "erasure")
    text = message.as_string()
    assert message["To"] == "jane@example.org" and message["From"] == "privacy@shop.example"
    assert message["Auto-Submitted"] == "auto-generated" and message["Message-ID"].endswith("@shop.example>")
    assert "01234567" in text and "01234567" not in message["Subject"]  # not on a lock screen's preview
    assert "10 minutes" in text and "4 tries" in text and "erase your personal data" in text
    assert "http" not in text


def test_an_internationalised_address_is_written_as_it_is() -> None:
    message = mail.verification_message(SETTINGS, "josé@exämple.de", "01234567", "access")
    assert message.policy == email.policy.SMTPUTF8
    assert "To: josé@exämple.de" in message.as_string()


def test_the_completion_notice_says_how_to_download_an_export_without_handing_it_over() -> None:
    expires = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    message = mail.completion_message(
        SETTINGS, "jane@example.org", request_id=42, request_type="access", status="completed", export_expires_at=expires
    )
    text = message.get_content()
    assert message["Subject"] == "Your privacy request 42: completed"
    assert "GET https://privacy.example.com/v1/privacy-requests/42/export" in text
    assert "Authorization: Bearer <your secret>" in text and "2026-12-01 09:30 UTC" in text


def test_the_completion_notice_of_a_request_that_found_nobody() -> None:
    message = mail.completion_message(SETTINGS, "jane@example.org", request_id=7, request_type="erasure", status="not_found")
    text = message.get_content()
    assert "we hold no personal data under this address" in text and "/export" not in text


def test_the_smtp_password_is_never_shown() -> None:
    assert "smtp-secret" not in repr(SETTINGS) and "smtp-secret" not in SETTINGS.mail.display
