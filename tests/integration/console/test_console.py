"""The DPO console through a real server and a real HTTP client: sign-in, sessions, CSRF, the
queue, a request's page and actions, and hostile input answered with a clear error, no 500 and
nothing changed."""

from __future__ import annotations

import email
import email.policy
import os
import re
import socket
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import httpx
import pytest

import devstack
from core import db
from core.config import Settings
from tests.helpers import PROJECT_ROOT, query, run_command
from tests.integration.console.conftest import DPO, LOGIN_TOKEN, PASSWORD, Console, accounts, file_request

pytestmark = pytest.mark.integration


def assert_page(response: httpx.Response, status: int, text: str) -> None:
    """An HTML page with ``status`` that says ``text``, with the console's security headers."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert text in response.text, response.text
    assert "script-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def requests_table(settings: Settings) -> list[tuple[object, ...]]:
    return query(settings, "SELECT * FROM privacy_requests ORDER BY id")


def test_help_of_the_three_commands() -> None:
    server = run_command("console", "--help")
    assert server.returncode == 0 and "--host" in server.stdout and "--port" in server.stdout and "8002" in server.stdout
    assert "create" in run_command("console.accounts", "--help").stdout
    dpo = run_command("gdpr.dpo", "--help")
    assert dpo.returncode == 0 and all(
        c in dpo.stdout for c in ("hold", "release", "deny", "extend", "verify", "lift-restriction")
    )
    assert "a case reference and the ground, never personal data" in " ".join(dpo.stdout.split())
    hold = run_command("gdpr.dpo", "--dpo", "dora", "hold", "--help")
    assert "never personal data: it is kept in the audit trail for good" in " ".join(hold.stdout.split())
    release = run_command("gdpr.dpo", "--dpo", "dora", "release", "--help")
    assert "--hold ID" in release.stdout and "--request ID" in release.stdout


def test_accounts_are_created_listed_and_disabled_without_showing_a_password(settings: Settings) -> None:
    created = accounts("create", DPO, "--password-stdin", password=PASSWORD)
    assert created.returncode == 0, created.stderr
    assert PASSWORD not in created.stdout + created.stderr
    [(stored,)] = query(settings, "SELECT password_hash FROM dpo_accounts WHERE username = %s", (DPO,))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    for args, password, expected in [
        (("create", DPO, "--password-stdin"), PASSWORD, "exists"),
        (("create", "other", "--password-stdin"), "short", "at least 12 characters"),
        (("create", "Bad Name", "--password-stdin"), PASSWORD, "a username is 2-40 characters"),
        (("disable", "nobody"), None, "no enabled account named 'nobody'"),
    ]:
        result = accounts(*args, password=password)
        assert result.returncode == 2, result.stdout
        assert result.stderr.strip().startswith("error: ") and expected in result.stderr and "Traceback" not in result.stderr
    listed = accounts("list")
    assert listed.returncode == 0 and DPO in listed.stdout and PASSWORD not in listed.stdout
    assert accounts("disable", DPO).returncode == 0
    assert query(settings, "SELECT disabled_at IS NOT NULL FROM dpo_accounts") == [(True,)]


def test_the_console_needs_its_database_and_a_free_port(settings: Settings) -> None:
    closed = devstack.free_port()
    down = run_command("console", "--port", "0", env={"DATABASE_URL": f"postgresql://de_user:x@127.0.0.1:{closed}/de_db"})
    assert down.returncode == 2 and down.stderr.strip().splitlines()[-1].startswith("error: PostgreSQL at"), down.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = run_command("console", "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 2 and "cannot listen on" in busy.stderr and "Traceback" not in busy.stderr


def test_sign_in_queue_and_sign_out(settings: Settings, console: Console) -> None:
    away = console.http.get("/")
    assert away.status_code == 303 and away.headers["location"] == "/login"
    assert_page(console.http.get("/login"), 200, "Sign in")
    assert_page(console.login(password="wrong password!"), 401, "Wrong username or password.")
    assert_page(console.login(username="nobody"), 401, "Wrong username or password.")

    signed_in = console.login()
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("console_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie and "Secure" not in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    [(stored,)] = query(settings, "SELECT token_hash FROM dpo_sessions")
    assert stored != token and len(stored) == 64  # SHA-256, never the token

    assert_page(console.http.get("/"), 200, f"signed in as <strong>{DPO}</strong>")
    out = console.http.post("/logout", data={"csrf": console.csrf()})
    assert out.status_code == 303 and out.headers["location"] == "/login?done=logout"
    assert query(settings, "SELECT count(*) FROM dpo_sessions") == [(0,)]
    with httpx.Client(base_url=console.url, cookies={"console_session": token}) as replay:
        assert replay.get("/", follow_redirects=False).status_code == 303


def test_an_expired_session_or_a_disabled_account_signs_the_dpo_out(settings: Settings, console: Console) -> None:
    assert console.login().status_code == 303
    query(settings, "UPDATE dpo_sessions SET expires_at = now() - interval '1 second'")
    assert console.http.get("/").headers["location"] == "/login"
    assert console.login().status_code == 303
    assert accounts("disable", DPO).returncode == 0
    assert console.http.get("/").headers["location"] == "/login"
    assert_page(console.login(), 401, "Wrong username or password.")


def test_repeated_failures_lock_the_account_name_for_a_while(settings: Settings, console: Console) -> None:
    for _ in range(5):
        assert console.login(password="not the password").status_code == 401
    locked = console.login()
    assert_page(locked, 429, "too many failed logins for this account")
    assert int(locked.headers["retry-after"]) > 0
    assert query(settings, "SELECT count(*) FROM dpo_sessions") == [(0,)]


def raw_login_request(console: Console, token: str, password: str) -> bytes:
    """A complete POST /login as bytes: sent on a raw socket, it reaches the server at once."""
    host = console.url.removeprefix("http://")
    body = urllib.parse.urlencode({"login_token": token, "username": DPO, "password": password}).encode()
    head = (
        f"POST /login HTTP/1.1\r\nHost: {host}\r\nCookie: console_login={token}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def status_of(sock: socket.socket) -> int:
    """The status code of the response on ``sock`` (read until the server closes it)."""
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_simultaneous_guesses_get_no_more_tries_than_the_brake_allows(settings: Settings, console: Console) -> None:
    """30 logins sent at once, 29 wrong and the right one last, once all passed the brake while
    their hashes were checked, and the right one got in: each attempt now counts before its hash."""
    token = LOGIN_TOKEN.search(console.http.get("/login").text).group(1)  # type: ignore[union-attr]
    host, port = console.url.removeprefix("http://").rsplit(":", 1)
    passwords = [f"wrong guess number {i}" for i in range(29)] + [PASSWORD]
    sockets = [socket.create_connection((host, int(port)), timeout=60) for _ in passwords]
    try:
        for sock, password in zip(sockets, passwords, strict=True):
            sock.sendall(raw_login_request(console, token, password))
        statuses = [status_of(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert statuses.count(401) == 5, statuses  # only MAX_FAILURES passwords were checked
    assert statuses[-1] == 429 and statuses.count(429) == 25, statuses
    assert query(settings, "SELECT count(*) FROM dpo_sessions") == [(0,)]


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(settings: Settings, console: Console) -> None:
    request_id = file_request(settings)
    before = requests_table(settings)
    # Not signed in: refused before anything is read.
    assert_page(console.http.post(f"/requests/{request_id}/deny", data={"reason": "x"}), 403, "sign in again")
    assert_page(console.http.post("/login", data={"username": DPO, "password": PASSWORD}), 403, "login form expired")
    assert console.login().status_code == 303
    for fields in ({"reason": "x"}, {"reason": "x", "csrf": "forged"}, {"reason": "x", "csrf": ""}):
        assert_page(console.http.post(f"/requests/{request_id}/deny", data=fields), 403, "security token is missing or stale")
    assert_page(console.http.post("/logout", data={}), 403, "security token")
    assert requests_table(settings) == before


def test_a_post_carrying_another_sessions_valid_token_is_refused(settings: Settings, console: Console) -> None:
    """The CSRF token is bound to its session: a token lifted from one signed-in browser does not
    pass in another's POST (here both are the same DPO's, so only the binding can refuse it)."""
    request_id = file_request(settings)
    before = requests_table(settings)
    other = Console(console.process, console.log, console.url)  # a second browser, its own cookies
    try:
        assert console.login().status_code == 303 and other.login().status_code == 303
        theirs = other.csrf(f"/requests/{request_id}")
        assert theirs != console.csrf(f"/requests/{request_id}")
        refused = console.http.post(f"/requests/{request_id}/deny", data={"csrf": theirs, "reason": "x"})
        assert_page(refused, 403, "security token is missing or stale")
        assert requests_table(settings) == before
        # The token was valid, in its own session.
        assert other.http.post(f"/requests/{request_id}/deny", data={"csrf": theirs, "reason": "x"}).status_code == 303
    finally:
        other.http.close()
    assert requests_table(settings) != before


def test_the_queue_shows_deadlines_and_overdue_requests_in_red(settings: Settings, console: Console) -> None:
    overdue = file_request(settings, days_ago=40)
    fresh = file_request(settings, email="x@example.com", kind="access", status="unverified", days_ago=2)
    done = file_request(settings, email=None, status="completed", days_ago=3)
    query(settings, "UPDATE privacy_requests SET processed_at = now() WHERE id = %s", (done,))
    assert console.login().status_code == 303
    page = console.http.get("/")
    assert_page(page, 200, "1 overdue")
    rows = dict(re.findall(r'<tr class="(\w+)" data-request="(\d+)"', page.text))
    assert {int(v): k for k, v in rows.items()} == {overdue: "overdue", fresh: "open", done: "closed"}
    assert re.search(rf'data-request="{overdue}">.*?overdue by (9|10|11) days', page.text, re.S)
    assert "jane" not in page.text and "x@example.com" not in page.text
    only_open = console.http.get("/", params={"status": "open", "type": "access"})
    assert f'data-request="{fresh}"' in only_open.text and f'data-request="{overdue}"' not in only_open.text


def test_a_request_page_shows_the_masked_email_and_the_timeline(settings: Settings, console: Console) -> None:
    request_id = file_request(settings, status="unverified")
    assert console.login().status_code == 303
    page = console.http.get(f"/requests/{request_id}")
    assert_page(page, 200, "j***@example.com")
    assert "jane.doe" not in page.text
    assert re.search(r"<td>received</td><td>privacy_api</td>", page.text)


def test_each_action_from_the_request_page(settings: Settings, console: Console) -> None:
    unverified = file_request(settings, status="unverified")
    erasure = file_request(settings)
    assert console.login().status_code == 303

    verified = console.act(unverified, "verify")
    assert verified.status_code == 303 and verified.headers["location"] == f"/requests/{unverified}?done=verify"
    assert_page(console.http.get(verified.headers["location"]), 200, "Identity verified")
    assert query(settings, "SELECT status FROM privacy_requests WHERE id = %s", (unverified,)) == [("pending",)]

    assert console.act(erasure, "extend", months="1", reason="archive off site").status_code == 303
    assert console.act(erasure, "hold", reason="litigation 17", until="2099-01-31").status_code == 400  # ten years at most
    assert console.act(erasure, "hold", reason="litigation 17", until="").status_code == 303
    held = console.http.get(f"/requests/{erasure}")
    assert_page(held, 200, "litigation 17")
    assert "on_hold" in held.text and "extended" in held.text
    [hold] = RELEASE_FORM.findall(held.text)
    released = console.act(erasure, "release", hold=hold)
    assert released.status_code == 303 and released.headers["location"] == f"/requests/{erasure}?done=release"
    assert_page(console.http.get(released.headers["location"]), 200, "no other hold on the person is active")
    assert query(settings, "SELECT status FROM privacy_requests WHERE id = %s", (erasure,)) == [("pending",)]

    denied = console.act(erasure, "deny", reason="manifestly excessive")
    page = console.http.get(denied.headers["location"])
    assert_page(page, 200, "Request denied")
    assert re.search(r"<td>denied</td><td>dpo:dora</td><td>reason: manifestly excessive</td>", page.text)
    actions = [
        a for (a,) in query(settings, "SELECT action FROM privacy_audit_log WHERE request_id = %s ORDER BY id", (erasure,))
    ]
    assert actions == ["received", "extended", "held", "hold_released", "denied"]


RELEASE_FORM = re.compile(r'<input type="hidden" name="hold" value="(\d+)">')


def test_each_reason_field_says_what_a_reason_may_hold(settings: Settings, console: Console) -> None:
    request_id = file_request(settings)
    assert console.login().status_code == 303
    page = console.http.get(f"/requests/{request_id}")
    for form in ("deny", "extend", "hold"):
        assert re.search(
            rf'id="{form}-reason" [^>]*aria-describedby="{form}-hint">\s*<small class="hint" id="{form}-hint">'
            r"A case reference and the ground, never personal data: it is kept in the audit trail for good.</small>",
            page.text,
        ), page.text


def test_each_hold_is_released_by_its_own_button_and_the_erasure_waits_for_the_last(settings: Settings, console: Console) -> None:
    erasure = file_request(settings)
    assert console.login().status_code == 303
    assert console.act(erasure, "hold", reason="tax audit FY2025", until="").status_code == 303
    assert console.act(erasure, "hold", reason="litigation 2026-17", until="").status_code == 303
    page = console.http.get(f"/requests/{erasure}")
    tax, litigation = sorted(RELEASE_FORM.findall(page.text), key=int)
    assert f'id="release-{tax}"' in page.text and f'id="release-{litigation}"' in page.text

    released = console.act(erasure, "release", hold=tax)
    assert released.headers["location"] == f"/requests/{erasure}?done=release-held"
    page = console.http.get(released.headers["location"])
    assert_page(page, 200, "another hold on the person is still active: their erasures stay on hold")
    assert RELEASE_FORM.findall(page.text) == [litigation]  # a released hold has no button
    assert query(settings, "SELECT status FROM privacy_requests WHERE id = %s", (erasure,)) == [("on_hold",)]
    again = console.act(erasure, "release", hold=tax)
    assert_page(again, 409, f"legal hold {tax} was already released")

    assert console.act(erasure, "release", hold=litigation).headers["location"] == f"/requests/{erasure}?done=release"
    assert query(settings, "SELECT status FROM privacy_requests WHERE id = %s", (erasure,)) == [("pending",)]
    details = query(
        settings,
        "SELECT details FROM privacy_audit_log WHERE request_id = %s AND action = 'hold_released' ORDER BY id",
        (erasure,),
    )
    assert details == [
        ({"hold_id": int(tax), "holds_still_active": [int(litigation)]},),
        ({"hold_id": int(litigation), "holds_still_active": []},),
    ]


def test_an_action_on_a_request_the_processor_is_answering_is_a_409_to_try_again(settings: Settings, console: Console) -> None:
    access = file_request(settings, kind="access")
    erasure = file_request(settings)
    assert console.login().status_code == 303
    before = requests_table(settings)
    with db.connection(settings.database) as processor, processor.cursor() as cur:
        cur.execute("SELECT id FROM privacy_requests WHERE id = %s FOR UPDATE", (erasure,))
        busy = console.act(access, "hold", reason="litigation 2026-17", until="")
        processor.rollback()
    assert_page(busy, 409, "being processed right now: nothing was changed")
    assert busy.headers["retry-after"] == "5"
    assert requests_table(settings) == before
    assert query(settings, "SELECT count(*) FROM legal_holds") == [(0,)]


def test_hostile_input_gets_a_clear_error_and_changes_nothing(settings: Settings, console: Console) -> None:
    request_id = file_request(settings)
    done = file_request(settings, email=None, status="completed")
    assert console.login().status_code == 303
    before = requests_table(settings)
    csrf = console.csrf()
    pages = [
        (console.http.get("/requests/abc"), 404, "no such page"),
        (console.http.get("/requests/0"), 404, "no such page"),
        (console.http.get("/requests/99999999999999999999999"), 404, "no such page"),
        (console.http.get("/requests/424242"), 404, "there is no privacy request 424242"),
        (console.http.get("/nowhere/../etc/passwd"), 404, "no such page"),
        (console.http.get("/static/../app.py"), 404, "no such page"),
        (console.http.get("/", params={"status": "<script>"}), 400, "no status &#39;&lt;script&gt;&#39;"),
        (console.http.put("/"), 405, "PUT is not allowed"),
        (console.http.post(f"/requests/{request_id}/explode", data={"csrf": csrf}), 404, "there is no action"),
        (console.http.post(f"/requests/{request_id}/deny", data={"csrf": csrf, "reason": "x" * 501}), 400, "at most 500"),
        (console.http.post(f"/requests/{request_id}/deny", data={"csrf": csrf, "reason": " "}), 400, "give a reason"),
        (console.http.post(f"/requests/{request_id}/deny", data={"csrf": csrf, "reason": "a\u0000b"}), 400, "one line"),
        (console.http.post(f"/requests/{request_id}/extend", data={"csrf": csrf, "months": "7", "reason": "r"}), 400, "1 or 2"),
        (
            console.http.post(f"/requests/{request_id}/hold", data={"csrf": csrf, "reason": "r", "until": "soon"}),
            400,
            "YYYY-MM-DD",
        ),
        (
            console.http.post(f"/requests/{request_id}/hold", data={"csrf": csrf, "reason": "r", "until": "2001-01-01"}),
            400,
            "passed",
        ),
        (console.http.post(f"/requests/{done}/deny", data={"csrf": csrf, "reason": "r"}), 409, "is completed"),
        (console.http.post(f"/requests/{request_id}/verify", data={"csrf": csrf}), 409, "only an unverified request"),
        (console.http.post(f"/requests/{request_id}/release", data={"csrf": csrf}), 400, "choose the hold to release"),
        (console.http.post(f"/requests/{request_id}/release", data={"csrf": csrf, "hold": "x1"}), 400, "choose the hold"),
        (console.http.post(f"/requests/{request_id}/release", data={"csrf": csrf, "hold": "77"}), 400, "no legal hold 77"),
        (console.http.post("/requests/424242/deny", data={"csrf": csrf, "reason": "r"}), 404, "no privacy request 424242"),
        (console.http.post(f"/requests/{request_id}/deny", data={"csrf": csrf, "reason": "r" * 9000}), 413, "exceeds 8192 bytes"),
        (
            console.http.post(
                f"/requests/{request_id}/deny",
                content=f"csrf={csrf}&reason=%FF%FE",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            400,
            "could not be read",
        ),
        (
            console.http.post(
                f"/requests/{request_id}/deny",
                content=f"csrf={csrf}&reason=a&reason=b",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            400,
            "sent twice",
        ),
        (console.http.post(f"/requests/{request_id}/deny", json={"csrf": csrf, "reason": "r"}), 415, "x-www-form-urlencoded"),
    ]
    for response, status, text in pages:
        assert_page(response, status, text)
    assert requests_table(settings) == before
    assert query(settings, "SELECT count(*) FROM legal_holds") == [(0,)]


def test_the_dpo_command_acts_in_a_dpo_accounts_name(settings: Settings, account: str) -> None:
    request_id = file_request(settings, status="unverified")
    verified = run_command("gdpr.dpo", "--dpo", account, "verify", str(request_id))
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stderr
    nobody = run_command("gdpr.dpo", "--dpo", "mallory", "deny", str(request_id), "--reason", "x")
    assert nobody.returncode == 2 and "no enabled DPO account 'mallory'" in nobody.stderr
    again = run_command("gdpr.dpo", "--dpo", account, "verify", str(request_id))
    assert again.returncode == 2 and again.stderr.startswith("error: request") and "Traceback" not in again.stderr
    held = subprocess_with_input(
        ["gdpr.dpo", "--dpo", account, "hold", "--email-stdin", "--reason", "audit"], "JANE.DOE@example.com\n"
    )
    assert held.returncode == 0 and "put on hold: " + str(request_id) in held.stdout, held.stderr
    assert "jane" not in held.stdout.lower()
    second = run_command("gdpr.dpo", "--dpo", account, "hold", "--request", str(request_id), "--reason", "litigation 17")
    assert second.returncode == 0, second.stderr
    [first_hold, second_hold] = [h for (h,) in query(settings, "SELECT id FROM legal_holds ORDER BY id")]
    ambiguous = run_command("gdpr.dpo", "--dpo", account, "release", "--request", str(request_id))
    assert ambiguous.returncode == 2 and "Traceback" not in ambiguous.stderr
    assert ambiguous.stderr.strip() == (
        f"error: the person of request {request_id} is under 2 active legal holds ({first_hold}, {second_hold}): "
        "name the one to release (--hold ID)"
    )
    nothing = run_command("gdpr.dpo", "--dpo", account, "release")
    assert nothing.returncode == 2 and "--hold ID" in nothing.stderr and "Traceback" not in nothing.stderr
    one = run_command("gdpr.dpo", "--dpo", account, "release", "--hold", str(first_hold))
    assert one.returncode == 0 and f"still under legal hold {second_hold}" in one.stdout, one.stderr
    assert query(settings, "SELECT status FROM privacy_requests WHERE id = %s", (request_id,)) == [("on_hold",)]
    last = run_command("gdpr.dpo", "--dpo", account, "release", "--request", str(request_id))
    assert last.returncode == 0 and f"back to pending: {request_id}" in last.stdout, last.stderr
    assert query(settings, "SELECT status FROM privacy_requests WHERE id = %s", (request_id,)) == [("pending",)]
    with db.connection(settings.database) as processor, processor.cursor() as cur:
        cur.execute("SELECT id FROM privacy_requests WHERE id = %s FOR UPDATE", (request_id,))
        busy = run_command("gdpr.dpo", "--dpo", account, "deny", str(request_id), "--reason", "unfounded")
        processor.rollback()
    assert busy.returncode == 2 and "Traceback" not in busy.stderr
    assert busy.stderr.strip().startswith("error: the request (or another request of its person) is being processed right now")
    assert len(busy.stderr.strip().splitlines()) == 1
    actors = query(settings, "SELECT DISTINCT actor FROM privacy_audit_log WHERE action <> 'received'")
    assert actors == [("dpo:dora",)]


def subprocess_with_input(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def _mails_to(address: str) -> list[str]:
    """Subject and text of every mail the embedded stack's SMTP server wrote to ``address``."""
    data_dir = os.environ.get("TEST_STACK_DATA_DIR")
    if not data_dir:
        pytest.skip("needs the embedded stack's mail server")
    found = []
    for path in sorted((Path(data_dir) / devstack.MAIL_DIR).glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["X-Envelope-To"] == f"<{address}>":
            body = message.get_body()
            found.append(f"{message['Subject']}\n{body.get_content() if body is not None else ''}")
    return found


def test_a_requester_who_filed_through_the_api_is_told_a_denial_or_an_extension_and_why(
    settings: Settings, console: Console, account: str
) -> None:
    asker = f"asker-{uuid.uuid4().hex[:12]}@example.com"  # the stack's mail folder lasts the whole session
    [(first,), (second,), (third,)] = query(
        settings,
        "INSERT INTO privacy_requests (email, request_type, status, channel) VALUES"
        " (%(e)s, 'access', 'pending', 'api'), (%(e)s, 'erasure', 'pending', 'api'), (%(e)s, 'objection', 'pending', 'api')"
        " RETURNING id",
        {"e": asker},
    )
    operators = file_request(settings)  # an operator's SQL row: nobody to mail
    assert console.login().status_code == 303
    assert console.act(first, "extend", months="2", reason="case 2026-17: 40,000 events to review").status_code == 303
    assert console.act(second, "deny", reason="case 2026-18: the fourth identical request this month").status_code == 303
    assert console.act(operators, "deny", reason="case 2026-19").status_code == 303
    denied = run_command("gdpr.dpo", "--dpo", account, "deny", str(third), "--reason", "case 2026-20: repeated")
    assert denied.returncode == 0 and "the requester was mailed" in denied.stdout, denied.stderr

    # Mailed before each answer: the console and the command return once the server has the mail.
    mails = _mails_to(asker)
    assert len(mails) == 3, mails
    extended = next(m for m in mails if m.startswith(f"Your privacy request {first}: extended"))
    assert "case 2026-17: 40,000 events to review" in extended and "We will answer by " in extended
    refused = next(m for m in mails if m.startswith(f"Your privacy request {second}: denied"))
    assert "case 2026-18" in refused and "supervisory authority" in refused
    assert any(m.startswith(f"Your privacy request {third}: denied") for m in mails)
    # The denial removed the address: it is nowhere in the requests any more.
    assert query(settings, "SELECT count(*) FROM privacy_requests WHERE email = %s", (asker,)) == [(1,)]  # the extended one
