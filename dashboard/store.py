"""The dashboard's PostgreSQL connections: the dashboard_reader role's login (core.pool)."""

from __future__ import annotations

from core import db, pool

# Every viewer asks for one short read-only transaction every few seconds: two connections serve a
# room of screens, and a third viewer waits milliseconds for one.
LOGIN = pool.Login(db.DASHBOARD_ROLE, "dashboard", size=2)
