"""The dashboard's PostgreSQL connections, as the dashboard_reader role's login (core.pool)."""

from __future__ import annotations

from core import db, pool
from core.config import DatabaseSettings

# Every viewer asks for one short read-only transaction every few seconds: two connections serve a
# room of screens, and a third viewer waits milliseconds for one.
POOL_SIZE = 2
APPLICATION = "dashboard"


class Database(pool.Database):
    def __init__(self, settings: DatabaseSettings, size: int = POOL_SIZE) -> None:
        super().__init__(settings, role=db.DASHBOARD_ROLE, application_name=APPLICATION, size=size)
