"""The hourly check of privacy requests' deadlines (Art. 12(3)): open requests overdue or due soon.

It warns in the log, with counts and request ids only (the scheduler's login reads nothing else of
a request), and never mails anybody: the DPO console shows the same queue to act on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core import db
from core.config import Settings
from gdpr import requests
from scheduler import runs

logger = logging.getLogger(__name__)

# Ids named in one line at most; the rest are counted ("and 12 more").
MAX_IDS = 20


@dataclass(frozen=True)
class Deadlines:
    """Open requests past their deadline, and those due within the warning window, by id."""

    overdue: list[int]
    due_soon: list[int]
    warn_days: int

    def summary(self) -> str:
        """One line with the counts and the ids: what the log and the run's record say."""
        if not self.overdue and not self.due_soon:
            return f"no open privacy request is overdue or due within {self.warn_days} days"
        parts = []
        if self.overdue:
            parts.append(f"{len(self.overdue)} overdue ({ids(self.overdue)})")
        if self.due_soon:
            parts.append(f"{len(self.due_soon)} due within {self.warn_days} days ({ids(self.due_soon)})")
        return "privacy requests: " + "; ".join(parts)


def ids(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:MAX_IDS])
    more = len(numbers) - MAX_IDS
    return f"ids {shown}" + (f" and {more} more" if more > 0 else "")


def find(cur: db.Cursor, warn_days: int) -> Deadlines:
    """The open requests due before ``warn_days`` from now (the database's clock), soonest first."""
    rows = requests.due_before(cur, warn_days)  # every open status: a legal hold does not stop the deadline
    return Deadlines(overdue=[i for i, late in rows if late], due_soon=[i for i, late in rows if not late], warn_days=warn_days)


def check(settings: Settings) -> str:
    """Find, warn, and return the one-line summary recorded with the run."""
    with (
        runs.connection(settings.database) as conn,
        conn,
        conn.cursor() as cur,
    ):
        found = find(cur, settings.scheduler.deadline_warn_days)
    if found.overdue or found.due_soon:
        logger.warning("%s", found.summary())
    else:
        logger.info("%s", found.summary())
    return found.summary()
