"""The collector's PostgreSQL connections, as the event_collector role's login (core.pool).

Event requests never touch the database; consent changes and the key ring do.
"""

from __future__ import annotations

from core import db, pool
from core.config import DatabaseSettings

# Consent changes are rare and each takes a millisecond: four connections serve hundreds a second.
POOL_SIZE = 4


class Database(pool.Database):
    def __init__(self, settings: DatabaseSettings, size: int = POOL_SIZE) -> None:
        super().__init__(settings, role=db.COLLECTOR_ROLE, application_name="collector", size=size)
