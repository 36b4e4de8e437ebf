"""The privacy API's PostgreSQL connections, as the privacy_api role's login (core.pool)."""

from __future__ import annotations

from core import db, pool
from core.config import DatabaseSettings

# Each transaction takes a few milliseconds, one that mails a code as long as the SMTP server
# takes (SMTP_TIMEOUT_S at worst): eight serve hundreds of requests a second.
POOL_SIZE = 8
APPLICATION_NAME = "privacy_api"


class Database(pool.Database):
    def __init__(self, settings: DatabaseSettings, size: int = POOL_SIZE) -> None:
        super().__init__(settings, role=db.PRIVACY_API_ROLE, application_name=APPLICATION_NAME, size=size)
