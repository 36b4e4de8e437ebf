"""A few PostgreSQL connections of one component login, for the HTTP services' worker threads.

psycopg2 blocks, so every transaction runs in a thread (``asyncio.to_thread``) and the event loop
keeps answering. A connection serves one thread at a time; a few are kept open, and a broken one
is dropped and opened again on next use. Each HTTP service holds one: its ``store`` module
declares its ``Login`` (which role, under which application name, how many connections).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg2.extensions

from core import db
from core.config import DatabaseSettings

T = TypeVar("T")


class Database:
    """At most ``size`` connections as ``role``'s login, opened when first needed."""

    def __init__(self, settings: DatabaseSettings, *, role: str, application_name: str, size: int) -> None:
        self.settings = settings
        self.role = role
        self.application_name = application_name
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
                conn = db.connect(self.settings, application_name=self.application_name, role=self.role)
            try:
                with conn, conn.cursor() as cur:
                    result = work(cur)
            except BaseException:
                if conn.closed or not _healthy(conn):
                    conn.close()
                else:
                    self._give_back(conn)
                raise
            self._give_back(conn)
            return result

    async def call(self, work: Callable[[db.Cursor], T]) -> T:
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


@dataclass(frozen=True)
class Login:
    """One service's pool: ``role``'s login, ``application_name`` in pg_stat_activity, at most
    ``size`` connections."""

    role: str
    application_name: str
    size: int

    def open(self, settings: DatabaseSettings, size: int | None = None) -> Database:
        """The pool (no connection is opened until one is needed); ``size`` instead of the login's."""
        return Database(settings, role=self.role, application_name=self.application_name, size=size or self.size)


def _healthy(conn: psycopg2.extensions.connection) -> bool:
    """After a failed transaction: is the connection still usable (idle, not broken)?"""
    return conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
