"""The console's PostgreSQL connections, as the dpo_console role, used from worker threads.

psycopg2 blocks, so every transaction runs in a thread (``asyncio.to_thread``) and the event loop
keeps answering; a connection serves one thread at a time, a few are kept open, and a broken one
is dropped and reopened on next use.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg2.extensions

from core import db
from core.config import DatabaseSettings

T = TypeVar("T")

# A handful of DPOs clicking through pages: each page is two short transactions.
POOL_SIZE = 4
APPLICATION = "console"


class Database:
    """At most ``size`` connections, opened when first needed."""

    def __init__(self, settings: DatabaseSettings, size: int = POOL_SIZE) -> None:
        self.settings = settings
        self._idle: list[psycopg2.extensions.connection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()

    def run(self, work: Callable[[db.Cursor], T]) -> T:
        """Run ``work`` in one transaction, committed when it returns and rolled back when it
        raises; blocking. ServiceUnavailable when no connection can be opened."""
        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = db.connect(self.settings, application_name=APPLICATION, role=db.CONSOLE_ROLE)
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

    async def call(self, work: Callable[[db.Cursor], T]) -> T:
        """``run`` in a worker thread."""
        return await asyncio.to_thread(self.run, work)

    def _give_back(self, conn: psycopg2.extensions.connection) -> None:
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
