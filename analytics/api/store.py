"""The analysts' API's PostgreSQL connections: the analysts_api role's login (core.pool)."""

from __future__ import annotations

from core import db, pool

# A request reads its caller's account (a millisecond), then its release (tens of milliseconds):
# four serve the handful of analysts a platform has.
LOGIN = pool.Login(db.ANALYSTS_API_ROLE, "analysts_api", size=4)
