"""The demo's data-subject steps: a person files a request through the privacy API, reads the
code from the mail the embedded stack's SMTP server wrote, confirms it and downloads the export
once; a DPO places a legal hold. What is printed masks addresses, secrets and codes."""

from __future__ import annotations

import email
import email.policy
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import httpx

from analytics.ledger import REPORT_ANALYST
from core.config import PROJECT_ROOT
from core.errors import PlatformError

READY_TIMEOUT_S = 60.0
MAIL_TIMEOUT_S = 30.0
CODE = re.compile(r"verification code is: (\d+)")
# The DPO account of one run: accounts keep their names for ever (disabled ones too), and the
# demo's stack keeps its data between runs, so each run makes its own.
DPO_PREFIX = "demo-dpo"


def mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def wait_ready(url: str, process: subprocess.Popen[bytes], log_dir: Path) -> None:
    """Poll the API's readiness (database and mail server reachable)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                print(f"privacy API ready at {url}", flush=True)
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise PlatformError(f"the privacy API exited early; see its log under {log_dir}")
        if time.monotonic() > deadline:
            raise PlatformError(f"the privacy API at {url} was not ready within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def _answer(response: httpx.Response, expected: int, what: str) -> dict[str, object]:
    if response.status_code != expected:
        raise PlatformError(f"the privacy API refused to {what}: {response.status_code} {response.text}")
    body = response.json()
    if not isinstance(body, dict):
        raise PlatformError(f"the privacy API answered {what} with {body!r}")
    return body


def file_request(url: str, address: str, kind: str) -> tuple[int, str]:
    """POST the request; return its id and secret."""
    print(
        f"$ curl -X POST {url}/v1/privacy-requests -H 'Content-Type: application/json'"
        f""" -d '{{"email": "{mask_email(address)}", "type": "{kind}"}}'""",
        flush=True,
    )
    body = _answer(httpx.post(f"{url}/v1/privacy-requests", json={"email": address, "type": kind}, timeout=30), 202, "file")
    request_id, secret = int(str(body["id"])), str(body["secret"])
    print(f"202: request {request_id} {body['status']}, due {body['due_at']}; secret {secret[:6]}... (shown once)", flush=True)
    return request_id, secret


def code_from_mail(mail_dir: Path, address: str) -> str:
    """The newest code mailed to ``address``, from the .eml files the SMTP server wrote."""
    deadline = time.monotonic() + MAIL_TIMEOUT_S
    while time.monotonic() < deadline:
        for path in sorted(mail_dir.glob("*.eml"), reverse=True):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if not isinstance(message, EmailMessage) or message["X-Envelope-To"] != f"<{address}>":
                continue
            body = message.get_body()
            found = CODE.search(body.get_content()) if body is not None else None
            if found:
                shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
                print(f"the code is in the mail {shown}", flush=True)
                return found.group(1)
        time.sleep(0.1)
    raise PlatformError(f"no verification mail arrived in {mail_dir} within {MAIL_TIMEOUT_S:.0f} s")


def verify(url: str, request_id: int, secret: str, code: str) -> None:
    print(
        f"$ curl -X POST {url}/v1/privacy-requests/{request_id}/verify -H 'Authorization: Bearer {secret[:6]}...'"
        """ -d '{"code": "********"}'""",
        flush=True,
    )
    body = _answer(
        httpx.post(
            f"{url}/v1/privacy-requests/{request_id}/verify",
            json={"code": code},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        ),
        200,
        "verify",
    )
    print(f"200: request {request_id} {body['status']}", flush=True)


def download_once(url: str, request_id: int, secret: str) -> None:
    """Download the export, then show that a second download is refused."""
    headers = {"Authorization": f"Bearer {secret}"}
    status = _answer(httpx.get(f"{url}/v1/privacy-requests/{request_id}", headers=headers, timeout=30), 200, "show")
    print(f"$ curl {url}/v1/privacy-requests/{request_id} ...  -> {status['status']}: {status['outcome']}", flush=True)
    first = httpx.get(f"{url}/v1/privacy-requests/{request_id}/export", headers=headers, timeout=30)
    if first.status_code != 200:
        raise PlatformError(f"the export could not be downloaded: {first.status_code} {first.text}")
    events = len(first.json().get("events", []))
    print(f"$ curl {url}/v1/privacy-requests/{request_id}/export ...  -> 200: the export, {events} events", flush=True)
    again = httpx.get(f"{url}/v1/privacy-requests/{request_id}/export", headers=headers, timeout=30)
    print(f"the same download again -> {again.status_code} {again.json().get('error')}", flush=True)


DAYS_A_YEAR = 365


def _run(env: Mapping[str, str], args: list[str], stdin: str, shown: str) -> None:
    print(f"$ {shown}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=dict(env), input=stdin, capture_output=True, text=True, check=False
    )
    print(result.stdout, end="", flush=True)
    if result.returncode != 0:
        raise PlatformError(f"`python -m {' '.join(args[:2])}` exited with status {result.returncode}: {result.stderr.strip()}")


def place_hold(env: Mapping[str, str], address: str) -> None:
    """A DPO account of this run (random password, never shown), then a legal hold on the person."""
    dpo = f"{DPO_PREFIX}-{datetime.now(UTC):%Y%m%d%H%M%S}"
    password = secrets.token_urlsafe(18)
    _run(
        env,
        ["console.accounts", "create", dpo, "--password-stdin"],
        password + "\n",
        f"python -m console.accounts create {dpo} --password-stdin   (a random password)",
    )
    reason = "Demo: open chargeback dispute, keep the order records"
    _run(
        env,
        ["gdpr.dpo", "--dpo", dpo, "hold", "--email-stdin", "--reason", reason],
        address + "\n",
        f"echo {mask_email(address)} | python -m gdpr.dpo --dpo {dpo} hold --email-stdin --reason '{reason}'",
    )


# Room in the overall budget beside the report's year: the demo analyst's releases through the API.
ANALYSTS_EPSILON = 100.0


def set_report_budget(env: Mapping[str, str], report_epsilon: float) -> None:
    """A DPO account of this run sets the daily report's budget for a year of daily reports
    (REPORT_EPSILON x 365) and the overall budget above it, as a DPO would before the scheduler runs."""
    dpo = f"{DPO_PREFIX}-budgets-{datetime.now(UTC):%Y%m%d%H%M%S}"
    _run(
        env,
        ["console.accounts", "create", dpo, "--password-stdin"],
        secrets.token_urlsafe(18) + "\n",
        f"python -m console.accounts create {dpo} --password-stdin   (a random password)",
    )
    yearly = report_epsilon * DAYS_A_YEAR
    for whose in (
        ["--analyst", REPORT_ANALYST, "--epsilon", f"{yearly:g}"],
        ["--overall", "--epsilon", f"{yearly + ANALYSTS_EPSILON:g}"],
    ):
        args = ["gdpr.dpo", "--dpo", dpo, "budget", "set", *whose]
        _run(env, args, "", "python -m " + " ".join(args))
