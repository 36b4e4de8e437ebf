"""The design document's ``config`` module: ``POSTGRES_DSN``, ``KAFKA_BOOTSTRAP_SERVERS`` and
``EVENTS_TOPIC``, for code written against the design (its ``tests/test_gdpr.py`` imports
``POSTGRES_DSN`` from here).

Nothing is defined twice: the values are the platform's own settings (``core.config``), read
once at import from the environment, then the stack file ``make up`` writes, then the defaults.
"""

from __future__ import annotations

from core.config import load_settings

_settings = load_settings()

POSTGRES_DSN: str = _settings.database.url
KAFKA_BOOTSTRAP_SERVERS: str = _settings.kafka.bootstrap_servers
EVENTS_TOPIC: str = _settings.kafka.topic

__all__ = ["EVENTS_TOPIC", "KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_DSN"]
