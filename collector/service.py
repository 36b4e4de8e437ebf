"""What the collector does for each request, behind the thin HTTP handlers of ``collector.app``.

Who may send (write key, browser origin, rate), which events go to Kafka and what the client is
told about each, consent changes to the ledger, and whether the broker and the database answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.errors
from confluent_kafka import KafkaException

from collector import auth, body, consent, intake
from collector.auth import KeyRing, WriteKey
from collector.delivery import Delivery
from collector.ratelimit import RateLimiter, retry_after
from core import db, pool, web
from core.config import CollectorSettings
from core.errors import PlatformError, ServiceUnavailable
from core.web import Problem

logger = logging.getLogger(__name__)

# /readyz must answer before a load balancer's probe gives up (typically 1-5 s).
READY_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Answer:
    """An HTTP status and its JSON body (and Retry-After, for a 503)."""

    status: int
    body: dict[str, Any]
    retry_after: int | None = None


class Collector:
    """The collector's state: the producer, the database, the live keys and their rate limits."""

    def __init__(self, settings: CollectorSettings, delivery: Delivery, database: pool.Database, keys: KeyRing) -> None:
        self.settings = settings
        self.delivery = delivery
        self.database = database
        self.keys = keys
        self.limiter = RateLimiter(settings.client_rate_per_s)

    # -- who may send ----------------------------------------------------------------------

    def authorize(self, authorization: str | None, write_key: str | None, origin: str | None, client: str = "") -> WriteKey:
        """The request's live write key; Problem with 401 (no key, unknown or revoked), 403 (a
        browser origin the key does not allow) or 429 (over the client's share of a browser
        key's rate, or the key's rate). ``client`` is the peer's address, never logged."""
        presented = auth.presented_key(authorization, write_key)
        if presented is None:
            raise Problem(
                401, "missing_write_key", "send your write key as 'Authorization: Bearer <key>' or 'X-Write-Key: <key>'"
            )
        key = self.keys.find(presented)
        if key is None:
            if self.keys.is_revoked(presented):
                raise Problem(401, "revoked_write_key", "this write key was revoked: ask the collector's operator for a new one")
            raise Problem(
                401, "unknown_write_key", "this write key is not known: check it, or ask the collector's operator for one"
            )
        if origin is not None and not key.allows_origin(origin):
            raise Problem(
                403,
                "origin_not_allowed",
                f"this write key does not allow pages at {origin}: add it with `python -m collector.keys create --origin`",
            )
        # Only a key meant for browsers (issued with origins) is public and shared per client; a
        # server key's producer may spend its whole rate from one address.
        shared = web.client_key(client) if key.origins else None
        wait, limit = self.limiter.wait(key.id, key.rate_per_s, time.monotonic(), shared)
        if wait > 0:
            share = min(self.limiter.client_rate_per_s, key.rate_per_s)
            raise Problem(
                429,
                "rate_limited",
                f"one client may send {share} requests a second with this write key: wait, and send larger batches"
                if limit == "client"
                else f"this write key may send {key.rate_per_s} requests a second: wait, and send larger batches",
                retry_after=retry_after(wait),
            )
        return key

    def preflight_allowed(self, origin: str | None) -> bool:
        """A CORS preflight carries no key: allowed when some live key allows the origin."""
        return origin is not None and self.keys.any_allows_origin(origin)

    # -- events ----------------------------------------------------------------------------

    async def ingest(self, payload: bytes, media_type: str) -> Answer:
        """Validate each event of a body, produce the valid ones and wait for the broker.

        202 when every valid event is in Kafka; 422 when no event was valid; 503 (with
        Retry-After) when the broker did not acknowledge some valid event: those are reported
        rejected with ``broker_unavailable``, the others accepted, and the client sends the
        rejected ones again.
        """
        raws = body.split_events(payload, media_type, self.settings.max_events)
        outcomes = intake.validate(raws, datetime.now(UTC), self.settings.metadata_limits, self.settings.max_event_amount)
        valid = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, intake.Valid)]
        if not valid:
            answer = intake.results(outcomes)
            answer.update(error="no_valid_event", detail="every event was rejected: see results for the reason of each")
            return Answer(422, answer)
        delivered = await self.delivery.send([(o.key, o.value) for _, o in valid])
        failures = 0
        for (index, _), failure in zip(valid, delivered, strict=True):
            if failure is not None:
                failures += 1
                outcomes[index] = intake.undelivered(f"the broker did not acknowledge this event ({failure}): send it again")
        answer = intake.results(outcomes)
        if not failures:
            return Answer(202, answer)
        logger.warning("%d of %d valid events not acknowledged by the broker: answering 503", failures, len(valid))
        answer.update(
            error=intake.BROKER_UNAVAILABLE,
            detail=f"{failures} events were not stored (see results): send those again after Retry-After seconds",
        )
        return Answer(503, answer, self.settings.retry_after_s)

    # -- consent ---------------------------------------------------------------------------

    async def record_consent(self, payload: bytes, key: WriteKey) -> Answer:
        """Append a consent change to the ledger, recorded as ``collector:<key name>``; 201 with
        the change and when it takes effect, 503 when the database does not answer."""
        if not key.may_record_consent:
            raise Problem(
                403,
                "consent_not_allowed",
                "this write key may send events only: record consent with a key issued with "
                "`python -m collector.keys create NAME --consent`",
            )
        change = consent.parse_change(payload)
        try:
            effective_at = await self.database.call(lambda cur: consent.record(cur, change, key.name))
        except psycopg2.errors.CheckViolation as e:
            refusal = consent.REFUSALS.get(e.diag.constraint_name or "")
            if refusal is None:
                raise
            raise Problem(409, *refusal) from e
        except (ServiceUnavailable, psycopg2.Error) as e:
            if isinstance(e, psycopg2.Error) and not db.is_transient(e):
                raise  # a defect (a missing grant, a bug), not an outage: answered 500
            logger.warning("consent not recorded, database unavailable: %s", db.describe_error(e))
            raise Problem(
                503,
                "database_unavailable",
                "the consent change was not recorded: send it again later",
                retry_after=self.settings.retry_after_s,
            ) from e
        body = {"user_id": change.user_id, "purpose": change.purpose, "granted": change.granted}
        return Answer(201, {**body, "effective_at": effective_at.isoformat()})

    # -- readiness -------------------------------------------------------------------------

    async def readiness(self) -> Answer:
        """200 when the broker answers a metadata request and the database a SELECT 1; else 503
        naming which does not."""
        broker, database = await asyncio.gather(self._check_broker(), self._check_database())
        checks = {"broker": broker or "ok", "database": database or "ok"}
        if broker is None and database is None:
            return Answer(200, {"status": "ready", **checks})
        down = " and ".join(name for name, problem in (("the broker", broker), ("the database", database)) if problem)
        return Answer(
            503,
            {"error": "not_ready", "detail": f"{down} did not answer; see the collector's log", **checks},
            self.settings.retry_after_s,
        )

    async def _check_broker(self) -> str | None:
        try:
            await asyncio.to_thread(self.delivery.check, READY_TIMEOUT_S)
        except (KafkaException, LookupError) as e:
            return f"down: {e.args[0].str() if isinstance(e, KafkaException) and e.args else e}"
        return None

    async def _check_database(self) -> str | None:
        try:
            await asyncio.wait_for(self.database.call(lambda cur: cur.execute("SELECT 1")), READY_TIMEOUT_S)
        except (PlatformError, psycopg2.Error, TimeoutError) as e:
            # The connection error names the server's address: for the log, not for any caller.
            logger.debug("readiness: database check failed: %s", db.describe_error(e) if isinstance(e, psycopg2.Error) else e)
            return "down: not reachable" if isinstance(e, PlatformError | TimeoutError) else f"down: {db.describe_error(e)}"
        return None

    # -- keys ------------------------------------------------------------------------------

    def reload_keys(self) -> bool:
        """Read the keys again (blocking); True when the set of live keys changed."""
        live, revoked = self.database.run(auth.load_keys)
        before = self.keys.snapshot()
        self.keys.replace(live, revoked)
        self.limiter.forget_all_but({k.id for k in live.values()})
        return before != self.keys.snapshot()

    async def refresh_keys(self) -> None:
        """Reload the keys every COLLECTOR_KEY_REFRESH_S seconds, for ever (cancel to stop). While
        the database does not answer the last known keys stay in force, and that is logged once."""
        failing = False
        while True:
            await asyncio.sleep(self.settings.key_refresh_s)
            try:
                changed = await asyncio.to_thread(self.reload_keys)
            except (PlatformError, psycopg2.Error) as e:
                if not failing:
                    reason = db.describe_error(e) if isinstance(e, psycopg2.Error) else str(e)
                    logger.warning(
                        "cannot reload the write keys (%s): keeping the %d known until the database answers",
                        reason,
                        len(self.keys),
                    )
                    failing = True
                continue
            if failing:
                logger.info("write keys reloaded again: %d live", len(self.keys))
                failing = False
            elif changed:
                logger.info("write keys changed: %d live", len(self.keys))
