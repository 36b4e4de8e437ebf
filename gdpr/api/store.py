"""The privacy API's PostgreSQL connections: the privacy_api role's login (core.pool)."""

from __future__ import annotations

from core import db, pool

# Each transaction takes a few milliseconds, one that mails a code as long as the SMTP server
# takes (SMTP_TIMEOUT_S at worst): eight serve hundreds of requests a second.
LOGIN = pool.Login(db.PRIVACY_API_ROLE, "privacy_api", size=8)
