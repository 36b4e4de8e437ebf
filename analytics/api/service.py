"""What the analysts' API does for each request, behind the thin HTTP handlers of
``analytics.api.app``: who the caller is (its bearer token), whether its role may ask for what it
asks, whether its client is within its rate, and the release or the DPO's reading.

Releases and the DPO's readings (budgets, ledger) are the release module's (analytics.release:
OpenDP, the privacy ledger, the budgets). Until it is merged they are answered 503
``release_module_unavailable``: an intermediate step, said as such in docs/analysts_api.md.

Logs name accounts, endpoints and outcomes; never a token, a client address or a figure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from analytics import analysts
from analytics.analysts import Caller, Role
from analytics.api import params
from core import pool
from core.config import AnalystsApiSettings
from core.ratelimit import Buckets, retry_after
from core.web import Problem, client_key

logger = logging.getLogger(__name__)

BEARER = "bearer "


@dataclass(frozen=True)
class Endpoint:
    """One route: its path, the role that may call it, its parameters and what it answers."""

    path: str
    role: Role
    query: type[params.Query]
    summary: str


RELEASES = (
    Endpoint(
        "/v1/kpis/daily-by-country",
        Role.ANALYST,
        params.KpisByCountry,
        "Daily KPIs (events, people, purchases, revenue) by country",
    ),
    Endpoint("/v1/funnel", Role.ANALYST, params.Funnel, "The ordered funnel of people (view, add to cart, purchase)"),
    Endpoint("/v1/retention", Role.ANALYST, params.Retention, "Retention by signup-week cohort"),
    Endpoint("/v1/rfm/segments", Role.ANALYST, params.Segments, "RFM segment sizes and values"),
    Endpoint("/v1/clv/segments", Role.ANALYST, params.Segments, "Lifetime value by segment"),
)
READINGS = (
    Endpoint("/v1/budgets", Role.DPO, params.Budgets, "Every budget: its period, its epsilon and what is left"),
    Endpoint("/v1/ledger", Role.DPO, params.Ledger, "The privacy ledger's latest releases, newest first"),
)
ENDPOINTS = RELEASES + READINGS


class AnalystsApi:
    """The API's state: its settings, the database, and the per-client rate limit."""

    def __init__(self, settings: AnalystsApiSettings, database: pool.Database) -> None:
        self.settings = settings
        self.database = database
        self.limits = params.Limits(settings.max_epsilon, settings.max_days)
        # One bucket per client, checked before the token: a guesser of tokens is held to the rate.
        self.limiter: Buckets[str] = Buckets()

    def admit(self, client: str) -> None:
        """Take one of the client's requests; 429 with Retry-After beyond its rate."""
        per_minute = self.settings.requests_per_client_per_minute
        wait = self.limiter.take(client_key(client), per_minute / 60.0, per_minute, time.monotonic())
        if wait > 0:
            raise Problem(
                429,
                "rate_limited",
                f"at most {per_minute} requests a minute may come from one client: wait",
                retry_after=retry_after(wait),
            )

    async def caller(self, authorization: str | None, endpoint: Endpoint) -> Caller:
        """Who sent the request: 401 without a valid token of an enabled account, 403 when its
        role may not call ``endpoint``."""
        if not authorization or not authorization.lower().startswith(BEARER):
            raise Problem(401, "missing_token", "send 'Authorization: Bearer <token>' (python -m analytics.accounts create)")
        token = authorization[len(BEARER) :].strip()
        caller = await self.database.call(lambda cur: analysts.holder(cur, token))
        if caller is None:
            logger.info("refused a request to %s: no enabled account holds its token", endpoint.path)
            raise Problem(401, "invalid_token", "the token is not one of an enabled account: ask for a new one")
        if caller.role != endpoint.role:
            logger.info("refused %s (%s) on %s: wrong role", caller.name, caller.role, endpoint.path)
            raise Problem(403, "wrong_role", _role_detail(endpoint.role))
        return caller

    def parse(self, endpoint: Endpoint, query: dict[str, str | list[str]]) -> params.Query:
        """The request's parameters as the endpoint's model; 400 naming what is wrong."""
        try:
            return params.parse(endpoint.query, query, self.limits)
        except params.InvalidParameters as e:
            raise Problem(400, e.code, e.detail) from None

    async def answer(self, caller: Caller, endpoint: Endpoint, _query: params.Query) -> dict[str, object]:
        """The release (or the DPO's reading) ``endpoint`` makes for ``caller``."""
        logger.info("%s asked for %s: the release module is not merged yet", caller.name, endpoint.path)
        raise Problem(
            503,
            "release_module_unavailable",
            "releases, budgets and the ledger come from the release module (analytics.release), which this"
            " installation does not have yet: nothing was computed and no budget was spent",
            retry_after=self.settings.retry_after_s,
        )


def _role_detail(role: Role) -> str:
    if role == Role.DPO:
        return "the budgets and the ledger are the DPO's: an analyst's token may ask for releases only"
    return "releases are made for analysts, from their own budgets: a DPO's token reads the budgets and the ledger"
