"""The collector's PostgreSQL connections: the event_collector role's login (core.pool).

Event requests never touch the database; consent changes and the key ring do.
"""

from __future__ import annotations

from core import db, pool

# Consent changes are rare and each takes a millisecond: four connections serve hundreds a second.
LOGIN = pool.Login(db.COLLECTOR_ROLE, "collector", size=4)
