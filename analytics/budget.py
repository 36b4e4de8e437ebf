"""The seam between the analysts' accounts and the release module's budgets.

``python -m analytics.accounts create NAME --budget EPS`` gives a new analyst a yearly privacy
budget through ``set_budget``. The budgets (per analyst, per period, composed by OpenDP's
accounting, set by the DPO with ``python -m gdpr.dpo budget``) belong to the release module
(``analytics.release``, sql/043-044). Until it is merged, ``set_budget`` records the requested
epsilon on the account (``analyst_accounts.requested_epsilon``, sql/045), where the release
module's budget setter picks it up; once merged, this function calls that setter and nothing else.
"""

from __future__ import annotations

import math

from core import db
from core.errors import InvalidInput


def check_epsilon(epsilon: float) -> float:
    """``epsilon`` when it is a budget (a finite number above 0); InvalidInput otherwise."""
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise InvalidInput(f"a budget is an epsilon above 0, such as 1 or 10, not {epsilon!r}")
    return epsilon


def set_budget(cur: db.Cursor, analyst: str, epsilon: float) -> None:
    """Give ``analyst`` a budget of ``epsilon`` for the current period, in the caller's transaction.

    SEAM (issue 29): records the request on the account until the release module's budget setter
    lands; then it delegates to it."""
    cur.execute(
        "UPDATE analyst_accounts SET requested_epsilon = %s WHERE name = %s AND role = 'analyst'",
        (check_epsilon(epsilon), analyst),
    )
