"""The console's PostgreSQL connections, as the dpo_console role's login (core.pool)."""

from __future__ import annotations

from core import db, pool
from core.config import DatabaseSettings

# A handful of DPOs clicking through pages: each page is two short transactions.
POOL_SIZE = 4
APPLICATION = "console"


class Database(pool.Database):
    def __init__(self, settings: DatabaseSettings, size: int = POOL_SIZE) -> None:
        super().__init__(settings, role=db.CONSOLE_ROLE, application_name=APPLICATION, size=size)
