"""The console's PostgreSQL connections: the dpo_console role's login (core.pool)."""

from __future__ import annotations

from core import db, pool

# A handful of DPOs clicking through pages: each page is two short transactions.
LOGIN = pool.Login(db.CONSOLE_ROLE, "console", size=4)
