"""Privacy budgets and the privacy ledger (sql/043, sql/044): what a release may spend, and the
record of what it spent.

A budget is an epsilon (pure differential privacy) per period (a calendar year by default, in
UTC), per analyst and for all analysts together (the analyst ``*``). A period's spending is the sum
of the ledger's epsilons since the period began: basic composition, exactly what OpenDP's
sequential compositor does with pure-DP measurements (its privacy map adds the epsilons). Pure DP
rather than zCDP so that a budget is in the unit the DPO and the analysts set and read (``--budget
EPS``), and a count's interval at epsilon 1 is the +-3.4 the documentation promises; zCDP would
compose many small releases more tightly, at the price of converting rho to an (epsilon, delta).

:func:`reserve` locks the analyst's and the overall budget rows in the caller's transaction before
anything is computed and refuses (:class:`BudgetExhausted`, with what is left) a release that
would go over either; :func:`record` appends the release to the ledger in the same transaction, so
two releases racing for the last of a budget cannot both pass. This module holds no OpenDP code:
the DPO's command imports it without loading OpenDP.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from core import db
from core.errors import InvalidInput

OVERALL = "*"  # the budget of all analysts together
REPORT_ANALYST = "report:daily"  # the daily business report's own budget (its releases draw from it)
PERIODS = ("year", "quarter", "month", "week", "day")
DEFAULT_PERIOD = "year"
MAX_NAME = 200
# An epsilon is stored to 10 decimals (NUMERIC(20, 10)): finer spending would round away.
EPSILON_PLACES = Decimal("0.0000000001")
MAX_EPSILON = 1e9  # what NUMERIC(20, 10) holds, with room


class BudgetExhausted(InvalidInput):
    """A release would go over a budget (or none is set): nothing was computed or recorded."""

    def __init__(self, analyst: str, scope: str, requested: float, left: float) -> None:
        self.analyst = analyst
        self.scope = scope  # the analyst's own budget, or OVERALL
        self.requested = requested
        self.left = left
        whose = "the overall budget" if scope == OVERALL else f"the budget of {scope!r}"
        super().__init__(f"privacy budget exhausted: epsilon {requested:g} asked, {whose} has {left:g} left this period")


@dataclass(frozen=True)
class Budget:
    """A budget's limit and spending in its current period."""

    analyst: str
    epsilon: float
    period: str
    period_start: datetime
    spent: float

    @property
    def left(self) -> float:
        return max(0.0, self.epsilon - self.spent)


def check_name(analyst: str) -> str:
    """An analyst's name as budgets and the ledger store it; InvalidInput when it cannot be one."""
    if not 1 <= len(analyst) <= MAX_NAME or not analyst.isprintable():
        raise InvalidInput(f"an analyst's name is 1 to {MAX_NAME} printable characters")
    return analyst


def as_epsilon(value: float) -> Decimal:
    """``value`` as the ledger stores it, refused when not a positive finite number it can hold."""
    if not (math.isfinite(value) and 0 < value < MAX_EPSILON):
        raise InvalidInput(f"epsilon must be a positive number below 1e9, not {value!r}")
    stored = Decimal(repr(float(value))).quantize(EPSILON_PLACES)
    if stored <= 0:
        raise InvalidInput(f"epsilon {value!r} is below the ledger's precision ({EPSILON_PLACES})")
    return stored


def set_budget(cur: db.Cursor, analyst: str, epsilon: float, set_by: str, period: str = DEFAULT_PERIOD) -> None:
    """Set ``analyst``'s (or OVERALL's) budget per ``period``, keeping the change (the DPO's act)."""
    check_name(analyst)
    if period not in PERIODS:
        raise InvalidInput(f"a budget's period is one of {', '.join(PERIODS)}, not {period!r}")
    if not (math.isfinite(epsilon) and 0 <= epsilon < MAX_EPSILON):
        raise InvalidInput(f"a budget is an epsilon from 0 to below 1e9, not {epsilon!r}")
    value = Decimal(repr(float(epsilon))).quantize(EPSILON_PLACES)
    cur.execute(
        "INSERT INTO privacy_budgets (analyst, epsilon, period, set_by) VALUES (%(a)s, %(e)s, %(p)s, %(by)s)"
        " ON CONFLICT (analyst) DO UPDATE SET epsilon = EXCLUDED.epsilon, period = EXCLUDED.period,"
        " set_by = EXCLUDED.set_by, set_at = clock_timestamp()",
        {"a": analyst, "e": value, "p": period, "by": set_by},
    )
    cur.execute(
        "INSERT INTO privacy_budget_changes (analyst, epsilon, period, set_by) VALUES (%s, %s, %s, %s)",
        (analyst, value, period, set_by),
    )


def budgets(cur: db.Cursor) -> list[Budget]:
    """Every budget with its spending in its current period, by analyst (OVERALL first)."""
    cur.execute("SELECT analyst FROM privacy_budgets ORDER BY analyst")
    found: list[Budget] = []
    for (analyst,) in cur.fetchall():
        found.extend(b for b in _read(cur, analyst, lock=False) if b.analyst == analyst)
    return found


def _read(cur: db.Cursor, analyst: str, *, lock: bool) -> list[Budget]:
    if lock:
        cur.execute("SELECT * FROM privacy_budget_reserve(%s)", (analyst,))
    else:
        cur.execute(
            "SELECT b.analyst, b.epsilon, b.period, date_trunc(b.period, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',"
            " coalesce((SELECT sum(l.epsilon) FROM privacy_ledger l WHERE (b.analyst = '*' OR l.analyst = b.analyst)"
            " AND l.at >= date_trunc(b.period, now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), 0)"
            " FROM privacy_budgets b WHERE b.analyst IN (%s, '*') ORDER BY b.analyst",
            (analyst,),
        )
    return [Budget(name, float(eps), period, start, float(spent)) for name, eps, period, start, spent in cur.fetchall()]


def reserve(cur: db.Cursor, analyst: str, epsilon: float) -> float:
    """Lock ``analyst``'s and the overall budget until the transaction ends and check that
    ``epsilon`` fits both; return what the tighter one will have left after it. BudgetExhausted
    (nothing recorded) when it does not fit or either budget is not set."""
    check_name(analyst)
    asked = float(as_epsilon(epsilon))
    found = {b.analyst: b for b in _read(cur, analyst, lock=True)}
    left_after = float("inf")
    for scope in (analyst, OVERALL):
        budget = found.get(scope)
        left = 0.0 if budget is None else budget.left
        # Compared at the ledger's precision, so a budget spent in equal steps ends exactly.
        if Decimal(repr(asked)) > Decimal(repr(left)).quantize(EPSILON_PLACES):
            raise BudgetExhausted(analyst, scope, asked, left)
        left_after = min(left_after, left - asked)
    return max(0.0, left_after)


def record(cur: db.Cursor, analyst: str, query: str, *, mechanism: str, epsilon: float, details: dict[str, Any]) -> int:
    """Append a release to the ledger (hash-chained by its trigger); its id."""
    cur.execute(
        "INSERT INTO privacy_ledger (analyst, query, mechanism, epsilon, details) VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (check_name(analyst), query, mechanism, as_epsilon(epsilon), json.dumps(details, sort_keys=True)),
    )
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("the ledger returned no id")
    return int(row[0])


def entries(cur: db.Cursor, *, analyst: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The ledger's latest releases, newest first (``analyst``'s only when given): who, which query,
    mechanism, epsilon, the declaration, when, and the row's place in the chain. Analysts and
    queries, never a person."""
    cur.execute(
        "SELECT id, analyst, query, mechanism, epsilon, details, at, row_hash FROM privacy_ledger"
        " WHERE %(a)s::text IS NULL OR analyst = %(a)s ORDER BY id DESC LIMIT %(n)s",
        {"a": analyst, "n": limit},
    )
    names = ("id", "analyst", "query", "mechanism", "epsilon", "details", "at", "row_hash")
    return [dict(zip(names, row, strict=True)) | {"epsilon": float(row[4])} for row in cur.fetchall()]
