"""What the privacy API does for each request, behind the thin HTTP handlers of ``gdpr.api.app``.

Filing: the code is mailed before the request is stored, inside the transaction that stores it,
so a request exists only once its code went out (a mail server that is down leaves nothing
behind: 503). Requests for one address are counted and filed one at a time, under a lock on the
address's keyed HMAC. Verifying, showing and downloading lock or read the request by its id and
check its secret first; an unknown id and a wrong secret get the same 404. A refusal that changes
something (a wrong code counted, a request expired, an expired export deleted) is committed
before it is answered.

Logs name request ids, types and outcomes; never an address, a code, a secret or a client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import psycopg2

from core import db, pool
from core.config import PROJECT_ROOT, Settings
from core.errors import PlatformError, ServiceUnavailable
from core.ratelimit import Buckets, retry_after
from core.web import Problem, client_key
from gdpr import mail, requests
from gdpr.api import records, tokens
from gdpr.api.payloads import NewRequest, not_found
from gdpr.audit import AuditLog
from gdpr.email_address import email_hmac, mailbox
from gdpr.exports import remove_export
from gdpr.requests import OPEN_STATUSES, Status
from gdpr.requests import ApiRequest as Request

logger = logging.getLogger(__name__)

ACTOR = "privacy_api"
# /readyz must answer before a load balancer's probe gives up (typically 1-5 s).
READY_TIMEOUT_S = 2.0
T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """An HTTP status and its JSON body (and Retry-After, for a 503)."""

    status: int
    body: dict[str, Any]
    retry_after: int | None = None


@dataclass(frozen=True)
class Export:
    """An access export, handed over once."""

    content: bytes
    filename: str


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def request_path(request_id: int) -> str:
    return f"/v1/privacy-requests/{request_id}"


class PrivacyApi:
    """The API's state: settings, the database, and the per-client limits on filing."""

    def __init__(self, settings: Settings, database: pool.Database) -> None:
        self.settings = settings
        self.api = settings.privacy_api
        self.database = database
        # One bucket per client: a burst of the per-minute rate, refilled evenly. Each request
        # filed mails a code; the per-address limit (in the database) holds across processes.
        self.limiter: Buckets[str] = Buckets()
        # Read once: a missing key (or the public one off the embedded stack) stops the start.
        self.key = settings.gdpr_hmac_key

    async def _transaction(self, work: Callable[[db.Cursor], T], undone: str) -> T:
        """``work`` in one transaction; a database that does not answer is a 503 saying that
        ``undone`` (and to send the request again later)."""
        try:
            return await self.database.call(work)
        except PlatformError as e:  # no connection (or the login refused): nothing was done
            logger.warning("database unavailable: %s", e)
            raise self._unavailable("database_unavailable", undone) from e
        except psycopg2.Error as e:
            if not db.is_transient(e):
                raise  # a defect (a missing grant, a bug), not an outage: answered 500
            logger.warning("database unavailable: %s", db.describe_error(e))
            raise self._unavailable("database_unavailable", undone) from e

    def _unavailable(self, code: str, undone: str) -> Problem:
        return Problem(503, code, f"{undone}: send it again later", retry_after=self.api.retry_after_s)

    # -- filing ----------------------------------------------------------------------------

    async def file(self, new: NewRequest, client: str) -> Answer:
        """File a request and mail its code: 202 with the request's id and secret (shown this
        once); 429 over a client's or an address's limit; 422 when the mail server refuses the
        address; 503 when the mail server or the database does not answer (nothing is filed)."""
        per_minute = self.api.requests_per_client_per_minute
        wait = self.limiter.take(client_key(client), per_minute / 60.0, per_minute, time.monotonic())
        if wait > 0:
            raise Problem(
                429,
                "rate_limited",
                f"at most {self.api.requests_per_client_per_minute} requests a minute may be filed from one client: wait",
                retry_after=retry_after(wait),
            )
        secret, code = tokens.new_secret(), tokens.new_code()
        proof = email_hmac(self.key, new.email)
        # The limit counts inboxes: each spelling of one (case, punycode) was a fresh allowance.
        mailbox_proof = email_hmac(self.key, mailbox(new.email))
        message = mail.verification_message(self.settings, new.address, code, new.request_type)

        def work(cur: db.Cursor) -> tuple[Request, datetime] | Problem:
            records.lock_address(cur, mailbox_proof)
            count, wait_s = requests.recent_to_mailbox(cur, mailbox_proof)
            if count >= self.api.requests_per_address_per_hour:
                return Problem(
                    429,
                    "address_rate_limited",
                    f"at most {self.api.requests_per_address_per_hour} requests an hour may be filed for one address: wait",
                    retry_after=retry_after(wait_s),
                )
            refused = self._mail(message)
            if refused is not None:
                return refused
            row = requests.file_unverified(
                cur,
                email=new.email,
                proof=proof,
                mailbox_proof=mailbox_proof,
                request_type=new.request_type,
                corrections=new.corrections,
                secret_hash=tokens.secret_hash(secret),
            )
            expires_at = records.insert_code(cur, row.id, tokens.code_hash(self.key, row.id, code), self.api.code_ttl_s)
            audit = AuditLog(ACTOR)
            audit.add(row.id, "code_sent", {"valid_s": self.api.code_ttl_s, "attempts": self.api.max_attempts})
            audit.write(cur)
            return row, expires_at

        result = await self._transaction(work, "the request was not filed")
        if isinstance(result, Problem):
            raise result
        row, expires_at = result
        logger.info("privacy request %d (%s) filed through the API: code mailed", row.id, row.request_type)
        return Answer(
            202,
            {
                "id": row.id,
                "secret": secret,
                "type": row.request_type,
                "status": row.status,
                "received_at": _iso(row.requested_at),
                "due_at": _iso(row.due_at),
                "code_expires_at": _iso(expires_at),
                "verify_url": f"{request_path(row.id)}/verify",
                "detail": "a code was mailed to the address: send it to verify_url with 'Authorization: Bearer <secret>'."
                " Keep the secret: it is shown only now, and shows the request's status and its export",
            },
        )

    def _mail(self, message: EmailMessage) -> Problem | None:
        """Send the code (blocking, in the transaction's thread); the refusal when it did not go."""
        try:
            mail.send(self.settings.mail, message)
        except mail.MailRefused as e:
            return Problem(422, "address_refused", f"{e}; nothing was filed")
        except ServiceUnavailable as e:
            logger.warning("verification code not mailed, nothing filed: %s", e)
            return self._unavailable("mail_unavailable", "the code could not be mailed, so nothing was filed")
        return None

    # -- verifying -------------------------------------------------------------------------

    async def verify(self, request_id: int, secret: str, code: str) -> Answer:
        """Check the mailed code: 200 and ``pending`` when it is right; 403 with the tries left
        when wrong; 410 once it expired or the tries ran out (the request is then ``expired``
        and its address gone); 409 when the request was verified already (a replayed code)."""

        def work(cur: db.Cursor) -> Answer | Problem:
            row = requests.find_for_api(cur, request_id, lock=True)
            if row is None or not tokens.secret_matches(secret, row.secret_hash):
                return not_found()
            if row.status == Status.EXPIRED:
                return Problem(410, "request_expired", "this request expired unverified: file a new one")
            if row.verified_at is not None or row.status != Status.UNVERIFIED:
                return Problem(409, "already_verified", f"this request was verified already; it is {row.status}")
            return self._check_code(cur, row, code)

        result = await self._transaction(work, "the code was not checked")
        if isinstance(result, Problem):
            if result.status != 404:
                logger.info("privacy request %d: verification refused (%s)", request_id, result.code)
            raise result
        logger.info("privacy request %d verified: pending", request_id)
        return result

    def _check_code(self, cur: db.Cursor, row: Request, code: str) -> Answer | Problem:
        audit = AuditLog(ACTOR)
        result = self._judge_code(cur, row, code, audit)
        audit.write(cur)
        return result

    def _judge_code(self, cur: db.Cursor, row: Request, code: str, audit: AuditLog) -> Answer | Problem:
        stored = records.code_of(cur, row.id)
        if stored is None or stored.expired or stored.attempts >= self.api.max_attempts:
            self._expire(cur, row.id, "the emailed code was not confirmed in time", audit)
            return Problem(410, "code_expired", "the code has expired: file a new request for a new code")
        if tokens.code_matches(self.key, row.id, code, stored.code_hash):
            requests.mark_verified(cur, row.id)
            requests.notify_processor(cur)  # --watch takes it at once
            audit.add(row.id, "verified", {"method": "code mailed to the address"})
            return Answer(200, {"id": row.id, "status": "pending", "due_at": _iso(row.due_at)})
        attempts = records.count_wrong_code(cur, row.id)
        left = max(0, self.api.max_attempts - attempts)
        audit.add(row.id, "verification_failed", {"attempts": attempts, "attempts_left": left})
        if left == 0:
            self._expire(cur, row.id, "too many wrong codes", audit)
            return Problem(410, "too_many_attempts", "that was the last try: the request has expired; file a new one")
        return Problem(
            403, "wrong_code", f"this is not the code that was mailed: {left} tries left", extra={"attempts_left": left}
        )

    @staticmethod
    def _expire(cur: db.Cursor, request_id: int, reason: str, audit: AuditLog) -> None:
        requests.expire_for_api(cur, request_id, reason)
        audit.add(request_id, "expired", {"reason": reason})

    # -- status ----------------------------------------------------------------------------

    async def status(self, request_id: int, secret: str) -> Answer:
        """The request's status, due date, outcome and export, to its secret's holder."""
        row = await self._transaction(lambda cur: requests.find_for_api(cur, request_id), "the status was not read")
        if row is None or not tokens.secret_matches(secret, row.secret_hash):
            raise not_found()
        return Answer(200, self.describe(row, datetime.now(UTC)))

    def describe(self, row: Request, now: datetime) -> dict[str, Any]:
        """What a requester may see of their request."""
        is_open = row.status in OPEN_STATUSES
        body: dict[str, Any] = {
            "id": row.id,
            "type": row.request_type,
            "status": row.status,
            "received_at": _iso(row.requested_at),
            "due_at": _iso(row.due_at),
            "days_left": max(0, math.ceil((row.due_at - now) / timedelta(days=1))) if is_open else None,
            "overdue": is_open and row.due_at < now,
            "processed_at": _iso(row.processed_at),
            "outcome": row.outcome,
            "export": None,
        }
        if row.request_type == "access":
            expires_at = self._export_expiry(row)
            body["export"] = {
                "available": row.export_path is not None
                and row.export_downloaded_at is None
                and expires_at is not None
                and expires_at > now,
                "expires_at": _iso(expires_at),
                "downloaded_at": _iso(row.export_downloaded_at),
                "url": f"{request_path(row.id)}/export",
            }
        return body

    def _export_expiry(self, row: Request) -> datetime | None:
        """When the export goes: as the processor set it, else ACCESS_EXPORT_DAYS after it was made."""
        if row.export_expires_at is not None or row.export_path is None or row.processed_at is None:
            return row.export_expires_at
        return row.processed_at + timedelta(days=self.settings.access_export_days)

    # -- the export ------------------------------------------------------------------------

    async def download(self, request_id: int, secret: str) -> Export:
        """Hand the access export over, once: its file is deleted in the same transaction that
        records the download. 404 while it is not made; 410 once downloaded, expired or deleted."""

        def work(cur: db.Cursor) -> Export | Problem:
            row = requests.find_for_api(cur, request_id, lock=True)
            if row is None or not tokens.secret_matches(secret, row.secret_hash):
                return not_found()
            audit = AuditLog(ACTOR)
            result = self._export_refusal(cur, row, audit) or self._hand_over(cur, row, audit)
            audit.write(cur)
            return result

        result = await self._transaction(work, "the export was not handed over")
        if isinstance(result, Problem):
            raise result
        logger.info("privacy request %d: access export downloaded, file deleted", request_id)
        return result

    def _export_refusal(self, cur: db.Cursor, row: Request, audit: AuditLog) -> Problem | None:
        url = request_path(row.id)
        if row.request_type != "access":
            return Problem(404, "no_export", "only an access request has an export")
        if row.status in OPEN_STATUSES:
            return Problem(
                404, "export_not_ready", f"the request is {row.status}: the export is made once it is processed; see {url}"
            )
        if row.export_downloaded_at is not None:
            return Problem(
                410, "export_downloaded", "the export was downloaded already, and is handed over once: file a new access request"
            )
        if row.export_path is None and row.status != Status.COMPLETED:
            return Problem(404, "no_export", f"the request ended {row.status}: no export was made; see {url}")
        return self._expired_export(cur, row, audit)

    def _expired_export(self, cur: db.Cursor, row: Request, audit: AuditLog) -> Problem | None:
        """The refusal for an export that is gone or past its download period (deleted now:
        the processor's sweep may not have run yet); None while it may be downloaded."""
        expires_at = self._export_expiry(row)
        if row.export_path is None or expires_at is None:
            return Problem(410, "export_gone", "the export was deleted: file a new access request for a new one")
        if expires_at > datetime.now(UTC):
            return None
        removed = remove_export(row.export_path)
        requests.forget_exports(cur, [row.id])
        audit.add(row.id, "export_deleted", {"reason": "the download period ended", "file_removed": removed})
        return Problem(410, "export_expired", "the export's download period ended and it was deleted: file a new access request")

    def _hand_over(self, cur: db.Cursor, row: Request, audit: AuditLog) -> Export | Problem:
        assert row.export_path is not None  # noqa: S101 - checked by _export_refusal
        path = _export_file(row.export_path)
        # The processor names every export after its request: anything else in the column is not one.
        if path.name != f"access_request_{row.id}.json":
            logger.error("privacy request %d: its export path does not name its export; not served", row.id)
            return Problem(410, "export_gone", "the export is not available: ask the data protection officer")
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            logger.warning("privacy request %d: its export file is missing", row.id)
            return Problem(410, "export_gone", "the export was deleted: file a new access request for a new one")
        path.unlink()
        requests.mark_downloaded(cur, row.id)
        audit.add(row.id, "export_downloaded", {"bytes": len(content)})
        audit.add(row.id, "export_deleted", {"reason": "downloaded", "file_removed": True})
        return Export(content, path.name)

    # -- readiness -------------------------------------------------------------------------

    async def readiness(self) -> Answer:
        """200 when the database answers a SELECT 1 and the mail server a NOOP; else 503 naming
        which does not."""
        database, smtp = await asyncio.gather(self._check_database(), self._check_mail())
        checks = {"database": database or "ok", "mail": smtp or "ok"}
        if database is None and smtp is None:
            return Answer(200, {"status": "ready", **checks})
        down = " and ".join(name for name, problem in (("the database", database), ("the mail server", smtp)) if problem)
        return Answer(
            503, {"error": "not_ready", "detail": f"{down} did not answer; see the API's log", **checks}, self.api.retry_after_s
        )

    async def _check_database(self) -> str | None:
        try:
            await asyncio.wait_for(self.database.call(lambda cur: cur.execute("SELECT 1")), READY_TIMEOUT_S)
        except (PlatformError, psycopg2.Error, TimeoutError) as e:
            logger.debug("readiness: database check failed: %s", db.describe_error(e) if isinstance(e, psycopg2.Error) else e)
            return "down"
        return None

    async def _check_mail(self) -> str | None:
        try:
            await asyncio.wait_for(asyncio.to_thread(mail.check, self.settings.mail), READY_TIMEOUT_S)
        except (PlatformError, TimeoutError) as e:
            logger.debug("readiness: mail check failed: %s", e)
            return "down"
        return None


def _export_file(path: str) -> Path:
    """An export's file; a relative path (an older processor's) is taken from the project root."""
    file = Path(path)
    return file if file.is_absolute() else PROJECT_ROOT / file
