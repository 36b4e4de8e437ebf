"""The privacy-request API end to end: ``python -m gdpr.api`` on a free port, a real HTTP client, the
stack's real SMTP server (each code is read from the .eml file it wrote), the real GDPR processor.

A request is filed, its code mailed, a wrong code counted, the right one makes it pending, the
processor completes it and its status shows that; an access export is downloaded once. Codes
expire and run out of tries; a replayed code is refused; a guessed id and a wrong secret get the
same 404; hostile bodies are refused with nothing stored and nothing mailed; an inbox cannot be
flooded. Nothing the person sent or was sent is logged.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import psycopg2.errors
import pytest

import devstack
from core import db
from core.config import Settings
from core.events import user_uuid
from gdpr.email_address import email_hmac
from gdpr.processing import process_pending
from tests.helpers import PROJECT_ROOT, HttpService, query, run_command, start_http_service, wait_until

pytestmark = pytest.mark.integration

CODE = re.compile(r"verification code is: (\d{8})")
# All requests of a test come from 127.0.0.1: the per-client limit is lifted unless under test.
GENEROUS = {"PRIVACY_API_REQUESTS_PER_CLIENT_PER_MINUTE": "10000"}


# -- the mail server and its inbox ----------------------------------------------------------


@dataclass(frozen=True)
class MailServer:
    """Where mail goes: the stack's own SMTP server, or one started for a stack without it."""

    directory: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def mail_server(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    data_dir = stack_env.get("TEST_STACK_DATA_DIR")
    if data_dir and "SMTP_PORT" in stack_env:
        # The embedded stack's: `make up` runs the same server, writing to .local/mail/.
        yield MailServer(Path(data_dir) / devstack.MAIL_DIR, {})
        return
    directory, port = tmp_path_factory.mktemp("mail"), devstack.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.mail", "--dir", str(directory), "--port", str(port)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: not devstack.port_is_free(port), timeout=30, what="the mail server")
    try:
        yield MailServer(directory, {"SMTP_HOST": devstack.HOST, "SMTP_PORT": str(port)})
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass(frozen=True)
class Inbox:
    """The .eml files the SMTP server wrote, read as a mailbox would show them."""

    directory: Path

    def messages_to(self, address: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if message["X-Envelope-To"] == f"<{address}>":
                found.append(message)
        return found

    def wait_for(self, address: str, count: int = 1) -> list[EmailMessage]:
        wait_until(lambda: len(self.messages_to(address)) >= count, timeout=30, interval=0.05, what=f"{count} mails")
        return self.messages_to(address)

    def code_for(self, address: str, count: int = 1) -> str:
        """The code of the ``count``-th mail to ``address``."""
        message = self.wait_for(address, count)[count - 1]
        body = message.get_body()
        assert body is not None
        found = CODE.search(body.get_content())
        assert found, body.get_content()
        return found.group(1)


@pytest.fixture
def inbox(mail_server: MailServer) -> Inbox:
    return Inbox(mail_server.directory)


# -- the API --------------------------------------------------------------------------------


@dataclass
class Api(HttpService):
    """A running ``python -m gdpr.api`` and an HTTP client pointed at it."""

    stop_timeout_s = 60

    def file(self, address: str, kind: str = "erasure", **more: Any) -> httpx.Response:
        return self.http.post("/v1/privacy-requests", json={"email": address, "type": kind, **more})

    def verify(self, request_id: int | str, secret: str, code: str) -> httpx.Response:
        return self.http.post(f"/v1/privacy-requests/{request_id}/verify", json={"code": code}, headers=bearer(secret))

    def status(self, request_id: int | str, secret: str) -> httpx.Response:
        return self.http.get(f"/v1/privacy-requests/{request_id}", headers=bearer(secret))

    def export(self, request_id: int | str, secret: str) -> httpx.Response:
        return self.http.get(f"/v1/privacy-requests/{request_id}/export", headers=bearer(secret))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def start_api(log_dir: Path, env: dict[str, str]) -> Api:
    """``python -m gdpr.api --port 0``; return once /healthz answers."""
    return Api(*start_http_service("gdpr.api", "privacy API", log_dir, env=env))


@pytest.fixture
def api(settings: Settings, mail_server: MailServer, tmp_path: Path) -> Iterator[Api]:
    """The API on the test's stack; it must stop cleanly (exit 0) on SIGTERM."""
    running = start_api(tmp_path, {**mail_server.env, **GENEROUS})
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output()


# -- helpers --------------------------------------------------------------------------------


def address(name: str = "jane", domain: str = "example.org") -> str:
    """A fresh address: the session's inbox is shared by every test."""
    return f"{name}.{uuid.uuid4().hex[:8]}@{domain}"


def add_user(settings: Settings, email_address: str, name: str = "Jane Roe", home: str = "Hauptstraße 5, Berlin") -> str:
    user_id = user_uuid(uuid.uuid4().int >> 64)
    query(
        settings,
        "INSERT INTO users_pii (user_id, email, full_name, address) VALUES (%s, %s, %s, %s)",
        (user_id, email_address, name, home),
    )
    query(settings, "INSERT INTO users_public (user_id, country, signup_date) VALUES (%s, 'DE', current_date)", (user_id,))
    return user_id


def filed(api: Api, inbox: Inbox, email_address: str, kind: str = "erasure", **more: Any) -> tuple[int, str, str]:
    """File a request; return its id, its secret and the code mailed for it."""
    response = api.file(email_address, kind, **more)
    assert response.status_code == 202, response.text
    body = response.json()
    # The mail server wrote the message before it accepted it, and the API answers after that.
    return body["id"], body["secret"], inbox.code_for(email_address, len(inbox.messages_to(email_address)))


def audit_trail(settings: Settings, request_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (action, actor, details)
        for action, actor, details in query(
            settings, "SELECT action, actor, details FROM privacy_audit_log WHERE request_id = %s ORDER BY id", (request_id,)
        )
    ]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The answer is ``status`` with the API's JSON error ``code`` and a detail to act on."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    return body


def request_row(settings: Settings, request_id: int) -> tuple[Any, ...]:
    [row] = query(
        settings,
        "SELECT status, email, email_hmac, channel, verified_at, corrections FROM privacy_requests WHERE id = %s",
        (request_id,),
    )
    return row


# -- the flow -------------------------------------------------------------------------------


def test_an_erasure_is_filed_verified_by_the_mailed_code_and_completed(settings: Settings, api: Api, inbox: Inbox) -> None:
    jane = address()
    add_user(settings, jane)

    response = api.file(jane, "erasure")

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "unverified" and body["type"] == "erasure"
    assert body["verify_url"] == f"/v1/privacy-requests/{body['id']}/verify"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["secret"]) and body["due_at"] > body["received_at"]
    request_id, secret = body["id"], body["secret"]
    [mail] = inbox.wait_for(jane)
    assert mail["To"] == jane and mail["Subject"] == "Confirm your privacy request"
    assert secret not in mail.as_string() and "http" not in mail.as_string()
    code = inbox.code_for(jane)
    # The address is kept for the processor, with its keyed HMAC (what the per-address limit counts).
    assert request_row(settings, request_id)[:4] == ("unverified", jane, email_hmac(settings.gdpr_hmac_key, jane), "api")

    wrong = "00000000" if code != "00000000" else "11111111"
    refused = assert_error(api.verify(request_id, secret, wrong), 403, "wrong_code")
    assert refused["attempts_left"] == 4
    verified = api.verify(request_id, secret, code)
    assert verified.status_code == 200, verified.text
    assert verified.json()["status"] == "pending"

    trail = audit_trail(settings, request_id)
    assert [(action, actor) for action, actor, _ in trail] == [
        ("received", "privacy_api"),
        ("code_sent", "privacy_api"),
        ("verification_failed", "privacy_api"),
        ("verified", "privacy_api"),
    ]
    for secret_thing in (jane, code, wrong, secret):
        assert secret_thing not in json.dumps([details for _, _, details in trail])

    assert process_pending(settings)["completed"] == 1
    # The answer is mailed by the processor, before it forgets the address.
    answer = inbox.wait_for(jane, 2)[1]
    assert answer["Subject"] == f"Your privacy request {request_id}: completed"

    status = api.status(request_id, secret)
    assert status.status_code == 200, status.text
    shown = status.json()
    assert (shown["id"], shown["type"], shown["status"]) == (request_id, "erasure", "completed")
    assert shown["days_left"] is None and shown["processed_at"] and shown["outcome"] and shown["export"] is None
    assert query(settings, "SELECT count(*) FROM users_pii WHERE email IS NOT NULL") == [(0,)]
    assert request_row(settings, request_id)[1] is None  # the address is gone from the request too
    # A replayed code: the request is verified already.
    assert_error(api.verify(request_id, secret, code), 409, "already_verified")
    # Nothing personal in the API's log.
    for secret_thing in (jane, code, secret):
        assert secret_thing not in api.output()


def test_an_access_export_is_downloaded_once(settings: Settings, api: Api, inbox: Inbox) -> None:
    jane = address()
    add_user(settings, jane, "Jane Müller")
    request_id, secret, code = filed(api, inbox, jane, "access")
    assert_error(api.export(request_id, secret), 404, "export_not_ready")
    assert api.verify(request_id, secret, code).status_code == 200
    assert_error(api.export(request_id, secret), 404, "export_not_ready")
    process_pending(settings)
    # The mail says how to download, never with a link that works alone, and holds no data.
    notice = inbox.wait_for(jane, 2)[1].get_body()
    assert notice is not None
    text = notice.get_content()
    assert f"/v1/privacy-requests/{request_id}/export" in text and "Bearer <your secret>" in text
    assert secret not in text and "Müller" not in text
    shown = api.status(request_id, secret).json()
    assert shown["status"] == "completed"
    assert shown["export"]["available"] is True and shown["export"]["expires_at"] > shown["processed_at"]
    [(path,)] = query(settings, "SELECT export_path FROM privacy_requests WHERE id = %s", (request_id,))
    assert Path(path).is_file()

    download = api.export(request_id, secret)

    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"] == f'attachment; filename="access_request_{request_id}.json"'
    assert download.headers["cache-control"] == "no-store"
    export = download.json()
    assert export["personal_data"]["email"] == jane and export["personal_data"]["full_name"] == "Jane Müller"
    assert not Path(path).exists()
    assert_error(api.export(request_id, secret), 410, "export_downloaded")
    again = api.status(request_id, secret).json()["export"]
    assert again["available"] is False and again["downloaded_at"]
    actions = [action for action, _, _ in audit_trail(settings, request_id)]
    assert actions[-2:] == ["export_downloaded", "export_deleted"]


def test_an_export_past_its_download_period_is_deleted_not_served(settings: Settings, api: Api, inbox: Inbox) -> None:
    jane = address()
    add_user(settings, jane)
    request_id, secret, code = filed(api, inbox, jane, "access")
    api.verify(request_id, secret, code)
    process_pending(settings)
    [(path,)] = query(settings, "SELECT export_path FROM privacy_requests WHERE id = %s", (request_id,))
    query(settings, "UPDATE privacy_requests SET export_expires_at = now() - interval '1 second' WHERE id = %s", (request_id,))

    assert_error(api.export(request_id, secret), 410, "export_expired")

    assert not Path(path).exists()
    assert query(settings, "SELECT export_path FROM privacy_requests WHERE id = %s", (request_id,)) == [(None,)]
    assert audit_trail(settings, request_id)[-1][:2] == ("export_deleted", "privacy_api")
    assert_error(api.export(request_id, secret), 410, "export_gone")


def test_an_internationalised_address_is_verified_and_erased(settings: Settings, api: Api, inbox: Inbox) -> None:
    jose = f"josé.{uuid.uuid4().hex[:6]}@exämple.de"
    add_user(settings, jose, "José Núñez")

    request_id, secret, code = filed(api, inbox, jose, "erasure")

    [mail] = inbox.messages_to(jose)
    assert mail["To"] == jose  # delivered with SMTPUTF8, the address as it is
    assert api.verify(request_id, secret, code).status_code == 200
    assert process_pending(settings)["completed"] == 1
    assert api.status(request_id, secret).json()["status"] == "completed"
    assert query(settings, "SELECT count(*) FROM users_pii WHERE email IS NOT NULL") == [(0,)]


def test_a_look_alike_address_is_its_own_mailbox_and_erases_nobody_else(settings: Settings, api: Api, inbox: Inbox) -> None:
    anna = address("anna")
    add_user(settings, anna, "Anna Schmidt")
    look_alike = "\u0430" + anna[1:]  # a Cyrillic a in front
    assert look_alike != anna

    request_id, secret, code = filed(api, inbox, look_alike)

    assert inbox.messages_to(anna) == []  # the code went to the look-alike's mailbox only
    assert api.verify(request_id, secret, code).status_code == 200
    process_pending(settings)
    assert api.status(request_id, secret).json()["status"] == "not_found"
    assert query(settings, "SELECT email, full_name FROM users_pii") == [(anna, "Anna Schmidt")]


def test_a_rectification_carries_its_corrections(settings: Settings, api: Api, inbox: Inbox) -> None:
    jane = address()
    corrections = {"full_name": "Jane Roe-Smith", "email": "  Jane.New@Example.ORG "}
    request_id, _secret, _code = filed(api, inbox, jane, "rectification", corrections=corrections)
    assert request_row(settings, request_id)[5] == {"full_name": "Jane Roe-Smith", "email": "jane.new@example.org"}


# -- codes ----------------------------------------------------------------------------------


def test_an_expired_code_expires_the_request_and_forgets_the_address(settings: Settings, api: Api, inbox: Inbox) -> None:
    jane = address()
    request_id, secret, code = filed(api, inbox, jane)
    query(
        settings, "UPDATE privacy_verifications SET expires_at = now() - interval '1 second' WHERE request_id = %s", (request_id,)
    )

    assert_error(api.verify(request_id, secret, code), 410, "code_expired")

    status, email_address, proof, *_ = request_row(settings, request_id)
    assert (status, email_address) == ("expired", None) and proof  # the keyed proof of what was asked stays
    assert audit_trail(settings, request_id)[-1][:2] == ("expired", "privacy_api")
    assert_error(api.verify(request_id, secret, code), 410, "request_expired")
    assert api.status(request_id, secret).json()["status"] == "expired"


def test_the_tries_run_out(settings: Settings, api: Api, inbox: Inbox) -> None:
    request_id, secret, code = filed(api, inbox, address())
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    for left in (4, 3, 2, 1):
        assert assert_error(api.verify(request_id, secret, wrong), 403, "wrong_code")["attempts_left"] == left

    assert_error(api.verify(request_id, secret, wrong), 410, "too_many_attempts")

    assert_error(api.verify(request_id, secret, code), 410, "request_expired")  # the right code, too late
    assert request_row(settings, request_id)[:2] == ("expired", None)
    actions = [action for action, _, _ in audit_trail(settings, request_id)]
    assert actions.count("verification_failed") == 5 and actions[-1] == "expired"
    assert process_pending(settings)["completed"] == 0


def test_two_verifications_at_once_succeed_once(settings: Settings, api: Api, inbox: Inbox) -> None:
    request_id, secret, code = filed(api, inbox, address())
    start = threading.Barrier(4)
    answers: list[int] = []

    def verify() -> None:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            start.wait()
            response = client.post(f"/v1/privacy-requests/{request_id}/verify", json={"code": code}, headers=bearer(secret))
            answers.append(response.status_code)

    threads = [threading.Thread(target=verify) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(answers) == [200, 409, 409, 409]
    actions = [action for action, _, _ in audit_trail(settings, request_id)]
    assert actions.count("verified") == 1


# -- guessed ids and secrets ------------------------------------------------------------------


def test_a_guessed_id_and_a_wrong_secret_get_the_same_answer(settings: Settings, api: Api, inbox: Inbox) -> None:
    request_id, secret, code = filed(api, inbox, address())
    other_secret = "A" * 43

    unknown = api.status(request_id + 1000, secret)
    wrong_secret = api.status(request_id, other_secret)

    assert_error(unknown, 404, "not_found")
    assert (wrong_secret.status_code, wrong_secret.content) == (unknown.status_code, unknown.content)
    for answer in (
        api.verify(request_id, other_secret, code),
        api.verify(request_id + 1000, secret, code),
        api.export(request_id, other_secret),
        api.status(request_id, "x' OR '1'='1"),  # cannot be a secret: nothing is looked up
        api.status(request_id, secret + "A"),
    ):
        assert (answer.status_code, answer.content) == (unknown.status_code, unknown.content)
    for bad_id in ("abc", "0", "-1", "01", "1.0", "9" * 19, "1%20OR%201=1", "1;DROP%20TABLE%20privacy_requests", "%C2%B9"):
        for answer in (api.status(bad_id, secret), api.verify(bad_id, secret, code), api.export(bad_id, secret)):
            assert (answer.status_code, answer.content) == (unknown.status_code, unknown.content), bad_id
    # No secret at all is a different matter, whatever the id.
    assert_error(api.http.get(f"/v1/privacy-requests/{request_id}"), 401, "missing_secret")
    assert_error(
        api.http.get(f"/v1/privacy-requests/{request_id}", headers={"Authorization": f"Basic {secret}"}), 401, "missing_secret"
    )
    # None of it counted as a try, or changed the request.
    assert [action for action, _, _ in audit_trail(settings, request_id)] == ["received", "code_sent"]
    assert query(settings, "SELECT attempts FROM privacy_verifications WHERE request_id = %s", (request_id,)) == [(0,)]
    assert api.verify(request_id, secret, code).status_code == 200


# -- hostile bodies ---------------------------------------------------------------------------

JSON = "application/json"


@dataclass(frozen=True)
class Hostile:
    what: str
    body: bytes
    status: int
    code: str
    content_type: str = JSON


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def jane(**more: object) -> bytes:
    return body(email="jane@example.org", type="erasure", **more)


HOSTILE = [
    Hostile("not JSON", b"email=jane@example.org&type=erasure", 400, "malformed_json"),
    Hostile("invalid UTF-8", b'{"email": "\xff\xfe@example.org", "type": "erasure"}', 400, "malformed_json"),
    Hostile("empty", b"", 400, "empty_body"),
    Hostile("a form", b"email=jane@example.org&type=erasure", 415, "unsupported_media_type", "application/x-www-form-urlencoded"),
    Hostile("no media type", jane(), 415, "unsupported_media_type", ""),
    Hostile("an array", b"[" + jane() + b"]", 400, "invalid_body"),
    Hostile("nested deep", b'{"email": ' + b"[" * 8000 + b"]" * 8000 + b', "type": "erasure"}', 400, "invalid_body"),
    Hostile("an unknown field", jane(status="pending"), 400, "invalid_body"),
    Hostile("a number for the email", body(email=12345, type="erasure"), 400, "invalid_body"),
    Hostile("no email", body(type="erasure"), 400, "invalid_body"),
    Hostile("an unknown type", body(email="jane@example.org", type="delete_everything"), 400, "invalid_type"),
    Hostile("SQL in the type", body(email="jane@example.org", type="erasure'; DROP TABLE users_pii;--"), 400, "invalid_type"),
    Hostile("SQL in the email", body(email="x'); DROP TABLE privacy_requests;--", type="erasure"), 400, "invalid_email"),
    Hostile("a zero-width space", body(email="ja\u200bne@example.org", type="erasure"), 400, "invalid_email"),
    Hostile("a header injection", body(email="jane@example.org\r\nBcc: all@example.org", type="erasure"), 400, "invalid_email"),
    Hostile("a NUL", body(email="jane@example.org\x00", type="erasure"), 400, "invalid_email"),
    Hostile("two addresses", body(email="jane@example.org, max@example.org", type="erasure"), 400, "invalid_email"),
    Hostile("a huge address", body(email="a" * 5000 + "@example.org", type="erasure"), 400, "invalid_email"),
    Hostile("corrections on an erasure", jane(corrections={"full_name": "X"}), 400, "invalid_corrections"),
    Hostile("no corrections", body(email="jane@example.org", type="rectification"), 400, "invalid_corrections"),
    Hostile(
        "an unknown correction",
        body(email="jane@example.org", type="rectification", corrections={"is_admin": "yes"}),
        400,
        "invalid_corrections",
    ),
    Hostile(
        "a correction not text",
        body(email="jane@example.org", type="rectification", corrections={"full_name": ["X"]}),
        400,
        "invalid_body",
    ),
    Hostile(
        "a corrected email that is none",
        body(email="jane@example.org", type="rectification", corrections={"email": "no"}),
        400,
        "invalid_corrections",
    ),
    Hostile("too large", jane(x="a" * 20_000), 413, "body_too_large"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[h.what for h in HOSTILE])
def test_a_hostile_body_is_refused_with_nothing_stored_or_mailed(
    settings: Settings, api: Api, inbox: Inbox, case: Hostile
) -> None:
    mails_before = len(list(inbox.directory.glob("*.eml")))
    headers = {"Content-Type": case.content_type} if case.content_type else {}

    assert_error(api.http.post("/v1/privacy-requests", content=case.body, headers=headers), case.status, case.code)

    assert query(settings, "SELECT count(*) FROM privacy_requests") == [(0,)]
    assert query(settings, "SELECT count(*) FROM privacy_audit_log") == [(0,)]
    assert len(list(inbox.directory.glob("*.eml"))) == mails_before
    assert query(settings, "SELECT count(*) FROM users_pii") == [(0,)]  # the tables are all still there


def test_a_huge_chunked_body_is_cut_off(settings: Settings, api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "jane@example.org", "type": "erasure", "x": "'
        for _ in range(1000):
            yield b"a" * 1024

    answer = api.http.post("/v1/privacy-requests", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(answer, 413, "body_too_large")
    assert query(settings, "SELECT count(*) FROM privacy_requests") == [(0,)]


def test_sql_metacharacters_that_make_a_valid_address_are_stored_as_they_are(settings: Settings, api: Api, inbox: Inbox) -> None:
    obrien = f"o'brien+{uuid.uuid4().hex[:6]}--%_@example.org"
    request_id, _secret, _code = filed(api, inbox, obrien)
    assert request_row(settings, request_id)[1] == obrien


def test_unknown_paths_and_methods_answer_json(api: Api) -> None:
    assert_error(api.http.get("/v1/admin"), 404, "no_such_path")
    assert_error(api.http.get("/v1/privacy-requests/1/verify/more"), 404, "no_such_path")
    assert_error(api.http.delete("/v1/privacy-requests/1"), 405, "method_not_allowed")
    assert_error(api.http.get("/v1/privacy-requests"), 405, "method_not_allowed")
    assert api.http.get("/readyz").json() == {"status": "ready", "database": "ok", "mail": "ok"}


# -- nobody's inbox can be flooded ------------------------------------------------------------


def test_one_address_gets_a_few_codes_an_hour_at_most(settings: Settings, api: Api, inbox: Inbox) -> None:
    jane = address()
    for _ in range(3):
        assert api.file(jane).status_code == 202

    refused = api.file(jane.upper())  # the same mailbox, however it is written

    assert_error(refused, 429, "address_rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert len(inbox.wait_for(jane, 3)) == 3 and inbox.messages_to(jane.upper()) == []
    assert query(settings, "SELECT count(*) FROM privacy_requests") == [(3,)]
    assert api.file(address()).status_code == 202  # another address is not affected


def test_an_internationalised_inbox_in_other_spellings_is_still_one_inbox(settings: Settings, api: Api, inbox: Inbox) -> None:
    """Case and punycode once made nine mailboxes of one inbox, each with its own allowance."""
    name = f"bomb{uuid.uuid4().hex[:8]}"
    spellings = [f"{name}@exämple.de", f"{name}@EXÄMPLE.de", f"{name}@xn--exmple-cua.de", f"{name.upper()}@XN--EXMPLE-CUA.DE"]
    spellings += [f"{name}@\uff45\uff58ämple.de", f"{name}@exa\u0308mple.de", f"{name.capitalize()}@Exämple.De"]
    answers = [api.file(spelling).status_code for spelling in spellings]

    assert answers == [202] * 3 + [429] * (len(spellings) - 3), answers
    assert_error(api.file(spellings[0]), 429, "address_rate_limited")
    assert query(settings, "SELECT count(*) FROM privacy_requests") == [(3,)]
    mailed = {message["X-Envelope-To"] for message in inbox.wait_for(spellings[0]) + inbox.messages_to(spellings[1])}
    assert sum(len(inbox.messages_to(s)) for s in {*spellings, *(m.strip("<>") for m in mailed)}) == 3
    assert api.file(f"{name}@example.de").status_code == 202  # another domain is another inbox


def test_one_client_files_a_few_requests_a_minute_at_most(settings: Settings, mail_server: MailServer, tmp_path: Path) -> None:
    limited = start_api(tmp_path, {**mail_server.env, "PRIVACY_API_REQUESTS_PER_CLIENT_PER_MINUTE": "2"})
    try:
        assert [limited.file(address()).status_code for _ in range(2)] == [202, 202]
        refused = limited.file(address())
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) >= 1
    finally:
        assert limited.stop() == 0
    assert query(settings, "SELECT count(*) FROM privacy_requests") == [(2,)]


# -- the mail server or the database down ---------------------------------------------------


def test_a_mail_server_that_is_down_leaves_nothing_filed(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind((devstack.HOST, 0))
        nowhere = closed.getsockname()[1]  # bound, never listening: connections are refused
        down = start_api(tmp_path, {"SMTP_HOST": devstack.HOST, "SMTP_PORT": str(nowhere), **GENEROUS})
        try:
            ready = down.http.get("/readyz")
            assert (ready.status_code, ready.json()["mail"], ready.json()["database"]) == (503, "down", "ok")
            refused = down.file(address())
            assert_error(refused, 503, "mail_unavailable")
            assert refused.headers["Retry-After"] == "30"
        finally:
            assert down.stop() == 0
    assert query(settings, "SELECT count(*) FROM privacy_requests") == [(0,)]
    assert query(settings, "SELECT count(*) FROM privacy_audit_log") == [(0,)]
    assert f"verification code not mailed, nothing filed: the SMTP server at {devstack.HOST}:{nowhere}" in down.output()


def test_the_command_explains_itself_and_refuses_an_unreachable_database_in_one_line(settings: Settings) -> None:
    helped = run_command("gdpr.api", "--help")
    assert helped.returncode == 0 and "POST /v1/privacy-requests" in helped.stdout and "SMTP_HOST" in helped.stdout
    result = run_command("gdpr.api", "--port", "0", env={"DATABASE_URL": "postgresql://de_user:secret@127.0.0.1:1/de_db"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "127.0.0.1:1" in line and "secret" not in result.stderr


# -- least privilege --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT email FROM privacy_requests",
        "SELECT corrections FROM privacy_requests",
        "SELECT email FROM users_pii",
        "UPDATE privacy_requests SET email_hmac = 'x'",
        "UPDATE privacy_requests SET due_at = now()",
        "DELETE FROM privacy_verifications",
        "UPDATE privacy_audit_log SET actor = 'x'",
        "SELECT details FROM privacy_audit_log",
    ],
)
def test_the_api_reads_no_address_and_rewrites_no_history(settings: Settings, statement: str) -> None:
    """The privacy_api login may file, verify and hand over, and nothing more (sql/014, sql/016)."""
    with (
        db.connection(settings.database, application_name="test", role=db.PRIVACY_API_ROLE) as conn,
        pytest.raises(psycopg2.errors.InsufficientPrivilege),
        conn,
        conn.cursor() as cur,
    ):
        cur.execute(statement)


# -- one limit for every process, and a stop that need not wait ------------------------------


def test_the_address_limit_holds_across_processes_and_a_restart(
    settings: Settings, mail_server: MailServer, tmp_path: Path
) -> None:
    """The per-address count lives in PostgreSQL, not in a process: two APIs on one database share
    one allowance, and a restarted one still remembers it."""
    env = {**mail_server.env, **GENEROUS, "PRIVACY_API_REQUESTS_PER_ADDRESS_PER_HOUR": "4"}
    first, second = start_api(tmp_path, env), start_api(tmp_path, env)
    try:
        jane = address()
        assert [api.file(jane).status_code for api in (first, second, first, second)] == [202] * 4
        assert_error(first.file(jane), 429, "address_rate_limited")
        assert_error(second.file(jane.upper()), 429, "address_rate_limited")

        assert second.stop() == 0
        second = start_api(tmp_path, env)
        assert_error(second.file(jane), 429, "address_rate_limited")
        assert_error(first.file(jane), 429, "address_rate_limited")
        assert second.file(address()).status_code == 202  # another address is not affected
    finally:
        codes = [first.stop(), second.stop()]
    assert codes == [0, 0], first.output() + second.output()
    assert query(settings, "SELECT count(*) FROM privacy_requests") == [(5,)]


def test_a_second_ctrl_c_exits_at_once_while_a_request_waits_for_the_mail_server(settings: Settings, tmp_path: Path) -> None:
    """The first SIGINT lets the request in flight get its answer, here after SMTP_TIMEOUT_S, as
    the mail server accepted the connection and never greets; the second exits at once with
    status 130 (core.cli), and the transaction it held is rolled back."""
    with socket.socket() as silent:
        silent.bind((devstack.HOST, 0))
        silent.listen()
        silent.settimeout(60)
        smtp_port = silent.getsockname()[1]
        api = start_api(tmp_path, {"SMTP_HOST": devstack.HOST, "SMTP_PORT": str(smtp_port), "SMTP_TIMEOUT_S": "600", **GENEROUS})
        try:
            payload = json.dumps({"email": address(), "type": "erasure"}).encode()
            host, port = api.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=60) as client:
                client.sendall(
                    b"POST /v1/privacy-requests HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                mail_connection, _ = silent.accept()  # the request is in flight, waiting for a greeting
                with mail_connection:
                    api.process.send_signal(signal.SIGINT)
                    wait_until(lambda: "SIGINT received" in api.output(), timeout=60, what="the first SIGINT to be taken")
                    assert api.process.poll() is None  # still waiting for the request in flight

                    api.process.send_signal(signal.SIGINT)
                    assert api.process.wait(timeout=60) == 130, api.output()
        finally:
            api.stop(signal.SIGKILL)
    assert "second SIGINT: exiting now" in api.output()
    assert query(settings, "SELECT count(*) FROM privacy_requests") == [(0,)]
