"""The API's PostgreSQL connections, as the privacy_api role, used from worker threads.

psycopg2 blocks, so every transaction runs in a thread (``asyncio.to_thread``) and the event loop
keeps answering. A connection serves one thread at a time; a few are kept open, and a broken one
is dropped and opened again on next use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg2.extensions

from core import db
from core.config import DatabaseSettings
from core.db import Cursor

T = TypeVar("T")

# Each transaction takes a few milliseconds, one that mails a code as long as the SMTP server
# takes (SMTP_TIMEOUT_S at worst): eight serve hundreds of requests a second.
POOL_SIZE = 8
APPLICATION_NAME = "privacy_api"


class Database:
    """At most ``size`` connections, opened when first needed."""

    def __init__(self, settings: DatabaseSettings, size: int = POOL_SIZE) -> None:
        self.settings = settings
        self._idle: list[psycopg2.extensions.connection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()

    def run(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in one transaction, committed when it returns and rolled back when it
        raises; blocking. ServiceUnavailable when no connection can be opened."""
        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = db.connect(self.settings, application_name=APPLICATION_NAME, role=db.PRIVACY_API_ROLE)
            try:
                with conn, conn.cursor() as cur:
                    result = work(cur)
            except BaseException:
                if conn.closed or conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                    conn.close()
                else:
                    self._give_back(conn)
                raise
            self._give_back(conn)
            return result

    async def call(self, work: Callable[[Cursor], T]) -> T:
        """``run`` in a worker thread, so the event loop is never blocked."""
        return await asyncio.to_thread(self.run, work)

    def _give_back(self, conn: psycopg2.extensions.connection) -> None:
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
