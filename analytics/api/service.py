"""What the analysts' API does for each request, behind the thin HTTP handlers of
``analytics.api.app``: who the caller is (its bearer token), whether its role may ask for what it
asks, whether its client is within its rate, and the release or the DPO's reading.

Releases are the release module's (analytics.dp: OpenDP, each figure with its 95 % interval, the
declaration, a ledger row, the budget reserved before anything is computed); each runs in one
transaction of the API's login, a member of privacy_releaser (sql/048). A release past a budget is
403 ``privacy_budget_exhausted`` with what is left, nothing computed or recorded. The DPO's
readings are analytics.ledger's budgets and entries (analysts and queries, never a person).

Logs name accounts, endpoints and outcomes; never a token, a client address or a figure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from analytics import analysts, dp, ledger
from analytics.analysts import Caller, Role
from analytics.api import params
from core import db, pool
from core.config import AnalystsApiSettings, ReleaseSettings
from core.errors import InvalidInput
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

    def __init__(self, settings: AnalystsApiSettings, database: pool.Database, bounds: ReleaseSettings) -> None:
        self.settings = settings
        self.database = database
        self.bounds = bounds
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

    async def answer(self, caller: Caller, endpoint: Endpoint, query: params.Query) -> dict[str, object]:
        """The release (or the DPO's reading) ``endpoint`` makes for ``caller``, in one transaction;
        403 ``privacy_budget_exhausted`` (with what is left) when a budget cannot pay it."""
        work = WORK[endpoint.path]
        try:
            answered = await self.database.call(lambda cur: work(cur, caller, query, self.bounds))
        except ledger.BudgetExhausted as e:
            logger.info("refused %s on %s: the %s budget is exhausted", caller.name, endpoint.path, e.scope)
            whose = "the overall budget" if e.scope == ledger.OVERALL else "your budget"
            raise Problem(
                403,
                "privacy_budget_exhausted",
                f"{whose} has epsilon {e.left:g} left this period, less than the {e.requested:g} asked: nothing was"
                " computed or spent; ask for less or ask the DPO for more",
                extra={"budget_left": e.left, "scope": "overall" if e.scope == ledger.OVERALL else "analyst"},
            ) from None
        except InvalidInput as e:
            # The release module's own checks (a range or an epsilon it cannot take) are the
            # caller's input: a 400 with the reason, never a 500. Nothing was spent: the
            # transaction rolled back.
            raise Problem(400, "invalid_parameter", str(e)) from None
        if endpoint.role == Role.ANALYST:
            logger.info("released %s to %s (ledger row %s)", endpoint.path, caller.name, answered.get("ledger_id"))
        return answered


Work = Callable[[db.Cursor, Caller, Any, ReleaseSettings], dict[str, object]]


def _kpis(cur: db.Cursor, caller: Caller, query: params.KpisByCountry, bounds: ReleaseSettings) -> dict[str, object]:
    chosen = bounds.model_copy(update={"countries": tuple(query.country)}) if query.country else bounds
    made = dp.release_daily_kpis(cur, caller.name, first=query.start, last=query.end, epsilon=query.epsilon, bounds=chosen)
    return release_json(made)


def _funnel(cur: db.Cursor, caller: Caller, query: params.Funnel, bounds: ReleaseSettings) -> dict[str, object]:
    made = dp.release_funnel(cur, caller.name, first=query.start, last=query.end, epsilon=query.epsilon, bounds=bounds)
    return release_json(made)


def _retention(cur: db.Cursor, caller: Caller, query: params.Retention, bounds: ReleaseSettings) -> dict[str, object]:
    made = dp.release_retention(cur, caller.name, first=query.start, last=query.end, epsilon=query.epsilon, bounds=bounds)
    return release_json(made)


def _segments(value: str) -> Work:
    def work(cur: db.Cursor, caller: Caller, query: params.Segments, bounds: ReleaseSettings) -> dict[str, object]:
        return release_json(dp.release_segment_values(cur, caller.name, value=value, epsilon=query.epsilon, bounds=bounds))

    return work


def _budgets(cur: db.Cursor, _caller: Caller, _query: params.Budgets, _bounds: ReleaseSettings) -> dict[str, object]:
    return {
        "budgets": [
            {
                "analyst": b.analyst,
                "overall": b.analyst == ledger.OVERALL,
                "period": b.period,
                "period_start": _json(b.period_start),
                "epsilon": b.epsilon,
                "spent": b.spent,
                "left": b.left,
            }
            for b in ledger.budgets(cur)
        ]
    }


def _ledger(cur: db.Cursor, _caller: Caller, query: params.Ledger, _bounds: ReleaseSettings) -> dict[str, object]:
    entries = ledger.entries(cur, analyst=query.analyst, limit=query.limit)
    return {"entries": [{name: _json(value) for name, value in entry.items()} for entry in entries]}


WORK: dict[str, Work] = {
    "/v1/kpis/daily-by-country": _kpis,
    "/v1/funnel": _funnel,
    "/v1/retention": _retention,
    "/v1/rfm/segments": _segments("monetary"),
    "/v1/clv/segments": _segments("clv"),
    "/v1/budgets": _budgets,
    "/v1/ledger": _ledger,
}


def _json(value: object) -> object:
    return value.isoformat() if isinstance(value, date | datetime) else value


def release_json(made: dp.Release) -> dict[str, object]:
    """A release as the API answers it: each cell's public key and figures (value, 95 % interval),
    the declaration, the epsilon spent, the budget left and the ledger row."""
    cells = [
        {name: _json(part) for name, part in zip(made.key_names, key, strict=True)}
        | {figure: {"value": f.value, "low": f.low, "high": f.high, "half_width": f.half_width} for figure, f in figures.items()}
        for key, figures in made.cells.items()
    ]
    return {
        "query": made.query,
        "epsilon": made.epsilon,
        "budget_left": made.budget_left,
        "ledger_id": made.ledger_id,
        "declaration": made.declaration,
        "cells": cells,
    }


def _role_detail(role: Role) -> str:
    if role == Role.DPO:
        return "the budgets and the ledger are the DPO's: an analyst's token may ask for releases only"
    return "releases are made for analysts, from their own budgets: a DPO's token reads the budgets and the ledger"
